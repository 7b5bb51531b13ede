import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  // The article runs the client on its own origin, apart from the chat
  // server (http://localhost:3000): Vite's default port.
  server: { port: 5173 },
});

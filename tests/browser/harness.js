// Test harness: runs the real chat-server binary and drives the chat page
// in real Chromium through playwright-core.
//
// Environment:
//   CHAT_SERVER_BIN     the server binary (crates/server/tests/browser.rs
//                       passes the one cargo built; default target/debug)
//   CHROMIUM_PATH       the browser (default /usr/bin/chromium, Debian's)
//   CHAT_ARTIFACTS_DIR  where screenshots go (default ci-artifacts/)

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before } from 'node:test';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ChatServer, repoRoot } from '../support/chat-server.js';

export { ChatServer };

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const ARTIFACTS = process.env.CHAT_ARTIFACTS_DIR || path.join(repoRoot, 'ci-artifacts');

/** How long any one condition may take to come true. */
export const WAIT_MS = 15_000;

export async function launchBrowser() {
  // Playwright already turns off background networking, sync and updates;
  // these keep Chromium off the network too (CI reaches nothing else).
  return chromium.launch({ executablePath: CHROMIUM, args: ['--disable-gpu', '--disable-quic'] });
}

/**
 * Sets up one test file: a server and a browser before its tests, and
 * after them a check that no page opened through `open` logged a script
 * error (other than those `ignored` accepts), then both closed.
 */
export function useChat({ ignored = () => false } = {}) {
  const session = {
    server: null,
    browser: null,
    pages: [],
    /** Opens the chat page; see `ChatPage.open` for `options` and `setup`. */
    async open(options = {}, setup = undefined) {
      const chat = await ChatPage.open(session.browser, session.server.url, options, setup);
      session.pages.push(chat);
      return chat;
    },
  };
  before(async () => {
    session.server = await ChatServer.start();
    session.browser = await launchBrowser();
  });
  after(async () => {
    for (const chat of session.pages) {
      assert.deepEqual(chat.errors.filter((error) => !ignored(error)), [], 'no script errors on the page');
    }
    await session.browser?.close();
    await session.server?.close();
  });
  return session;
}

/** The chat page as a person uses it: through labels and buttons. */
export class ChatPage {
  /** `setup(page)` runs before the page loads (e.g. to route its WebSocket). */
  static async open(browser, url, contextOptions = {}, setup = async () => {}) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...contextOptions });
    const page = await context.newPage();
    await setup(page);
    const chat = new ChatPage(page);
    page.on('pageerror', (error) => chat.errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') chat.errors.push(message.text());
    });
    await page.goto(url);
    return chat;
  }

  constructor(page) {
    this.page = page;
    /** Script errors and console errors; a test checks there are none. */
    this.errors = [];
    this.name = page.getByLabel('Name', { exact: true });
    this.room = page.getByLabel('Room', { exact: true });
    this.message = page.getByLabel('Message', { exact: true });
    this.joinButton = page.getByRole('button', { name: 'Join', exact: true });
    this.sendButton = page.getByRole('button', { name: 'Send', exact: true });
    this.log = page.getByRole('log');
    this.members = page.getByRole('list', { name: 'Members', exact: true });
  }

  /** Fills Name and Room, presses Join, and waits until the room is joined. */
  async join(name, room) {
    await this.name.fill(name);
    await this.room.fill(room);
    await this.joinButton.click();
    await this.waitFor(
      (room) => document.querySelector('#room-title')?.textContent === `#${room}` &&
        !/Joining/.test(document.querySelector('#room-subtitle')?.textContent ?? ''),
      room,
    );
  }

  /** Types a message and presses Enter. */
  async send(text) {
    await this.message.fill(text);
    await this.message.press('Enter');
  }

  /** The message texts in the log, top to bottom. */
  texts() {
    return this.log.locator('article.message .text').allTextContents();
  }

  memberNames() {
    return this.members.locator('.member-name').allTextContents();
  }

  /** Waits until `predicate(arg)`, evaluated in the page, is true. */
  waitFor(predicate, arg, timeout = WAIT_MS) {
    return this.page.waitForFunction(predicate, arg, { timeout, polling: 50 });
  }

  /** Waits until the log shows exactly `expected` (message texts, in order). */
  async waitForTexts(expected, timeout = WAIT_MS) {
    try {
      await this.waitFor(
        (expected) => {
          const texts = [...document.querySelectorAll('[role=log] article.message .text')].map((t) => t.textContent);
          return JSON.stringify(texts) === JSON.stringify(expected);
        },
        expected,
        timeout,
      );
    } catch (error) {
      const actual = await this.texts();
      throw new Error(`log never showed ${JSON.stringify(expected)}; it shows ${JSON.stringify(actual)}`, {
        cause: error,
      });
    }
  }

  /** Waits until the member list holds exactly `names` (any order). */
  async waitForMembers(names) {
    const want = [...names].sort();
    try {
      await this.waitFor(
        (want) => {
          const list = document.querySelector('[role=list][aria-label=Members], ul[aria-label=Members]');
          const have = [...list.querySelectorAll('.member-name')].map((n) => n.textContent).sort();
          return JSON.stringify(have) === JSON.stringify(want);
        },
        want,
      );
    } catch (error) {
      throw new Error(`members never became ${JSON.stringify(want)}: ${JSON.stringify(await this.memberNames())}`, {
        cause: error,
      });
    }
  }

  /** The status line ("Reconnecting…"), or '' when hidden. */
  async status() {
    const status = this.page.locator('#status');
    return (await status.isVisible()) ? (await status.textContent()).trim() : '';
  }

  async screenshot(file) {
    mkdirSync(ARTIFACTS, { recursive: true });
    // Transitions (drawers sliding in) are finished first.
    await this.page.screenshot({ path: path.join(ARTIFACTS, file), animations: 'disabled' });
  }

  async close() {
    await this.page.context().close();
  }
}

/** The element of the message whose text is exactly `text` (waits for it). */
export async function messageWith(chat, text) {
  const handle = await chat.waitFor(
    (text) =>
      [...document.querySelectorAll('[role=log] article.message')].find(
        (a) => a.querySelector('.bubble > .text')?.textContent === text,
      )?.dataset.seq,
    text,
  );
  return chat.log.locator(`article.message[data-seq="${await handle.jsonValue()}"]`);
}

/** Hovers a message and clicks one of its actions (Reply, Add reaction, Edit, Delete). */
export async function act(message, name) {
  await message.hover();
  await message.locator('.actions').getByRole('button', { name, exact: true }).click();
}

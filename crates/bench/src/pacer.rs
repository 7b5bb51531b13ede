//! Wakes each sender when its next message is due, to within tens of
//! microseconds.
//!
//! tokio's timers have millisecond granularity and fire late by up to about
//! two: a sender that slept on one would leave every message 0–2 ms late,
//! and since latency is measured from the scheduled time (see
//! [`crate::stamp`]), that lag would be added to every figure the bench
//! reports, a large part of a 3 ms p99. One thread instead holds every
//! sender's [`Schedule`] in a heap, sleeps (a futex wait with a
//! nanosecond timeout) until the earliest due time, and wakes that sender's
//! task through its [`Notify`]. The sender then sends what its own copy of
//! the same schedule says is due, so the two never need to agree on
//! anything but the arithmetic, which is the same code.
//!
//! The cost is one thread wakeup and one task wakeup per send: a few
//! microseconds, at most a few thousand times a second.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::schedule::Schedule;

/// One step as the pacer sees it.
#[derive(Debug)]
pub struct PacePlan {
    /// Every sender's schedule, by sender index.
    pub schedules: Vec<Schedule>,
}

/// The pacing thread; it ends when this is dropped.
pub struct Pacer {
    plans: Option<mpsc::Sender<PacePlan>>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    /// Starts the thread; `wake[i]` is notified when sender `i` is due.
    /// Due times are µs since `origin`.
    pub fn start(origin: Instant, wake: Vec<Arc<Notify>>) -> std::io::Result<Pacer> {
        let (tx, rx) = mpsc::channel::<PacePlan>();
        let thread = std::thread::Builder::new()
            .name("chat-bench-pacer".into())
            .spawn(move || pace(origin, &wake, &rx))?;
        Ok(Pacer {
            plans: Some(tx),
            thread: Some(thread),
        })
    }

    /// Replaces the current plan.
    pub fn plan(&self, plan: PacePlan) {
        if let Some(tx) = &self.plans {
            // The thread only ends when `plans` is dropped.
            let _ = tx.send(plan);
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        // Disconnecting wakes the thread, which then returns.
        self.plans = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The earliest due time first, with the sender it belongs to.
type Queue = BinaryHeap<Reverse<(u64, usize)>>;

fn queue_of(schedules: &[Schedule]) -> Queue {
    schedules
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.next_due().map(|due| Reverse((due, i))))
        .collect()
}

fn pace(origin: Instant, wake: &[Arc<Notify>], plans: &mpsc::Receiver<PacePlan>) {
    let mut schedules: Vec<Schedule> = Vec::new();
    let mut queue = Queue::new();
    loop {
        let next = queue.peek().map(|Reverse((due, _))| *due);
        let received = match next {
            None => plans.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => {
                let at = origin + Duration::from_micros(due);
                plans.recv_timeout(at.saturating_duration_since(Instant::now()))
            }
        };
        match received {
            Ok(plan) => {
                schedules = plan.schedules;
                queue = queue_of(&schedules);
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                let now = origin.elapsed().as_micros() as u64;
                while let Some(&Reverse((due, i))) = queue.peek() {
                    if due > now {
                        break;
                    }
                    queue.pop();
                    if let Some(n) = wake.get(i) {
                        n.notify_one();
                    }
                    let schedule = &mut schedules[i];
                    while schedule.pop_due(now).is_some() {}
                    if let Some(next) = schedule.next_due() {
                        queue.push(Reverse((next, i)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each sender, doing what a real one does (on each wakeup, send what is
    /// due), gets through its whole schedule and is never woken early. (A
    /// pacer woken late by a busy machine wakes several senders at once, or
    /// one sender once for two due times, so neither order nor the number
    /// of wakeups is asserted.)
    #[tokio::test]
    async fn each_sender_is_woken_at_or_after_each_due_time() {
        let origin = Instant::now();
        let wake: Vec<Arc<Notify>> = (0..3).map(|_| Arc::new(Notify::new())).collect();
        let pacer = Pacer::start(origin, wake.clone()).unwrap();
        let start = origin.elapsed().as_micros() as u64 + 20_000;
        // 3 senders at 100/s for 20 ms, spread over the 10 ms period: two
        // due times each.
        let schedule = move |i| Schedule::new(start, start + 20_000, 100.0, i, 3);
        pacer.plan(PacePlan {
            schedules: (0..3).map(schedule).collect(),
        });
        let waiters: Vec<_> = (0..3u64)
            .map(|i| {
                let wake = wake[i as usize].clone();
                tokio::spawn(async move {
                    let mut due = schedule(i);
                    let mut woken = Vec::new();
                    while due.next_due().is_some() {
                        wake.notified().await;
                        let now = origin.elapsed().as_micros() as u64;
                        while let Some(t) = due.pop_due(now) {
                            woken.push((t, now));
                        }
                    }
                    woken
                })
            })
            .collect();
        for waiter in waiters {
            let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
                .await
                .expect("every due time is woken for")
                .unwrap();
            assert_eq!(woken.len(), 2);
            for (due, at) in woken {
                assert!(at >= due, "woken at {at} µs, due at {due} µs");
            }
        }
        drop(pacer);
    }
}

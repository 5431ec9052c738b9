//! The event queue and the link model.
//!
//! Events are ordered by `(virtual time, insertion sequence)`, so ties break
//! deterministically. Links drop, delay (latency plus uniform jitter, which
//! reorders) and duplicate messages by the run's RNG, and respect the current
//! partition.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::NetConfig;
use crate::host::SimEvent;

/// Bytes on a simulated link: what the node's network carries.
#[derive(Clone, Debug)]
pub(crate) enum Wire {
    /// Consensus gossip messages (several at once for a flood, without an event per message).
    Gossip(Vec<Vec<u8>>),
    /// A sync request, answered under `id`.
    Request { id: u64, data: Vec<u8> },
    /// The answer to request `id`.
    Answer { id: u64, data: Vec<u8> },
}

/// A blocking job of a node's engine, run when it comes due.
pub(crate) type Job = Box<dyn FnOnce() -> SimEvent + Send>;

/// Everything that can happen.
pub(crate) enum Event {
    Deliver {
        to: usize,
        from: usize,
        wire: Wire,
    },
    /// A timer of incarnation `inc` of a node's engine.
    Timer {
        node: usize,
        inc: u32,
        event: Box<SimEvent>,
    },
    /// A blocking job of incarnation `inc` of a node's engine.
    Job {
        node: usize,
        inc: u32,
        job: Job,
    },
    /// Request `id` got no answer in time.
    RequestTimeout {
        id: u64,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Partition {
        groups: Vec<u8>,
    },
    Heal,
    LivenessStart,
    LivenessDeadline,
}

struct Item {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        (o.time, o.seq).cmp(&(self.time, self.seq))
    }
}

/// Virtual clock (microseconds) plus pending events.
#[derive(Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Item>,
    seq: u64,
    pub(crate) now: u64,
}

impl Queue {
    pub(crate) fn at(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.heap.push(Item {
            time,
            seq: self.seq,
            event,
        });
    }

    pub(crate) fn after(&mut self, delay: u64, event: Event) {
        self.at(self.now + delay, event);
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Event)> {
        let it = self.heap.pop()?;
        self.now = it.time;
        Some((it.time, it.event))
    }
}

/// Links between nodes.
pub(crate) struct Links {
    pub(crate) cfg: NetConfig,
    pub(crate) groups: Option<Vec<u8>>,
}

impl Links {
    pub(crate) fn connected(&self, a: usize, b: usize) -> bool {
        self.groups.as_ref().is_none_or(|g| g[a] == g[b])
    }

    /// Queues delivery of `wire` from `from` to `to` as the link decides.
    pub(crate) fn send(
        &self,
        q: &mut Queue,
        rng: &mut ChaCha8Rng,
        from: usize,
        to: usize,
        wire: Wire,
    ) {
        if !self.connected(from, to) || rng.random_bool(self.cfg.loss) {
            return;
        }
        let copies = if rng.random_bool(self.cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = self.cfg.jitter.as_micros() as u64;
            let delay = self.cfg.latency.as_micros() as u64
                + if jitter > 0 {
                    rng.random_range(0..=jitter)
                } else {
                    0
                };
            q.after(
                delay,
                Event::Deliver {
                    to,
                    from,
                    wire: wire.clone(),
                },
            );
        }
    }
}

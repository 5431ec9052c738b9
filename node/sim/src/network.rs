//! The event queue and the link model.
//!
//! Events are ordered by `(virtual time, insertion sequence)`, so ties break
//! deterministically. Links drop, delay (latency plus uniform jitter, which
//! reorders) and duplicate messages by the run's RNG, and respect the current
//! partition.

use super::NetConfig;
use crate::certificate::CommitCertificate;
use crate::messages::Message;
use crate::types::{Block, BlockId, Height, Round, Step};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What travels between simulated nodes.
#[derive(Clone, Debug)]
pub(crate) enum NetMsg {
    Consensus(Message),
    /// "My next height is ...": the sim's stand-in for the node's status
    /// exchange, which is what starts block sync for a node left behind.
    Status {
        height: Height,
    },
    SyncRequest {
        from: Height,
    },
    SyncResponse(Vec<(Block, CommitCertificate)>),
    /// Many consensus messages in one delivery (a flood, without an event per message).
    Batch(Vec<Message>),
}

/// Everything that can happen.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Deliver {
        to: usize,
        from: usize,
        msg: NetMsg,
    },
    Timeout {
        node: usize,
        inc: u32,
        height: Height,
        round: Round,
        step: Step,
    },
    Built {
        node: usize,
        inc: u32,
        height: Height,
        round: Round,
        block: Block,
    },
    Verified {
        node: usize,
        inc: u32,
        id: BlockId,
        valid: bool,
    },
    Rebroadcast {
        node: usize,
        inc: u32,
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

/// Virtual clock plus pending events.
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
pub(crate) struct Network {
    pub(crate) cfg: NetConfig,
    pub(crate) groups: Option<Vec<u8>>,
}

impl Network {
    pub(crate) fn connected(&self, a: usize, b: usize) -> bool {
        self.groups.as_ref().is_none_or(|g| g[a] == g[b])
    }

    /// Queues delivery of `msg` from `from` to `to` as the link decides.
    pub(crate) fn send(
        &self,
        q: &mut Queue,
        rng: &mut ChaCha8Rng,
        from: usize,
        to: usize,
        msg: NetMsg,
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
                    msg: msg.clone(),
                },
            );
        }
    }
}

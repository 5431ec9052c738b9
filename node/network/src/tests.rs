//! In-process tests of the network service: real swarms on loopback TCP (port 0), one tokio
//! runtime. Every wait is on an event or condition with a timeout; the only timed windows are
//! the "nothing more arrives" checks, which by nature need one.

use std::time::{Duration, Instant};

use alloy_primitives::B256;
use libp2p::{
    Multiaddr, PeerId, gossipsub::MessageAcceptance, identity::Keypair, multiaddr::Protocol,
};
use tokio::sync::mpsc;

use super::*;

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(800);
const MAX: usize = 2 * 1024 * 1024;
const BAN: Duration = Duration::from_millis(1500);
const REDIAL: Duration = Duration::from_millis(200);

fn genesis() -> B256 {
    B256::repeat_byte(0x11)
}

struct Node {
    net: NetworkHandle,
    events: NetworkEvents,
    /// Listen address including `/p2p/<peer id>`, usable as a bootnode.
    addr: Multiaddr,
}

impl Node {
    fn id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    /// Waits for the first event `f` maps to `Some`, dropping the others.
    async fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(NetworkEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    if let Some(t) = f(event) {
                        return t;
                    }
                }
                Ok(None) => panic!("{}: event channel closed waiting for {what}", self.id()),
                Err(_) => panic!("{}: timed out waiting for {what}", self.id()),
            }
        }
    }

    /// Waits until `PeerConnected` has been seen for every one of `peers` (in any order).
    async fn connected(&mut self, peers: &[PeerId]) {
        let mut missing: Vec<PeerId> = peers.to_vec();
        while !missing.is_empty() {
            let peer = self
                .wait_for("PeerConnected", |e| match e {
                    NetworkEvent::PeerConnected(p) => Some(p),
                    _ => None,
                })
                .await;
            missing.retain(|p| *p != peer);
        }
    }

    async fn disconnected(&mut self, peer: PeerId) {
        self.wait_for("PeerDisconnected", |e| {
            matches!(e, NetworkEvent::PeerDisconnected(p) if p == peer).then_some(())
        })
        .await
    }

    async fn incompatible(&mut self, peer: PeerId) -> Option<String> {
        self.wait_for("PeerIncompatible", |e| match e {
            NetworkEvent::PeerIncompatible {
                peer: p,
                protocol_version,
            } if p == peer => Some(protocol_version),
            _ => None,
        })
        .await
    }

    async fn request(&mut self) -> (PeerId, Vec<u8>, tokio::sync::oneshot::Sender<Vec<u8>>) {
        self.wait_for("request", |e| match e {
            NetworkEvent::Request {
                peer,
                data,
                respond,
            } => Some((peer, data, respond)),
            _ => None,
        })
        .await
    }

    /// Next gossip message (ignoring other events); accepts it when `accept`.
    async fn gossip(&mut self, verdict: MessageAcceptance) -> (Topic, PeerId, Vec<u8>) {
        let (topic, from, id, data) = self
            .wait_for("gossip", |e| match e {
                NetworkEvent::Gossip {
                    topic,
                    from,
                    message_id,
                    data,
                    ..
                } => Some((topic, from, message_id, data)),
                _ => None,
            })
            .await;
        self.net.report(id, from, verdict).await.unwrap();
        (topic, from, data)
    }

    /// Fails if `f` matches any event arriving within `QUIET`.
    async fn assert_quiet(&mut self, what: &str, f: impl Fn(&NetworkEvent) -> bool) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            assert!(
                !f(&event),
                "{}: unexpected {what}: {}",
                self.id(),
                event.kind()
            );
        }
    }

    async fn wait_mesh(&self, topic: Topic, peers: &[PeerId]) {
        let deadline = Instant::now() + WAIT;
        loop {
            let mesh = self.net.mesh_peers(topic).await.unwrap();
            if peers.iter().all(|p| mesh.contains(p)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: mesh {mesh:?} never contained {peers:?}",
                self.id()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn config(genesis: B256, keypair: Keypair, port: u16, bootnodes: &[&Multiaddr]) -> NetworkConfig {
    let listen = Multiaddr::from(std::net::Ipv4Addr::LOCALHOST).with(Protocol::Tcp(port));
    let mut config = NetworkConfig::new(keypair, listen, genesis);
    config.bootnodes = bootnodes.iter().map(|a| (*a).clone()).collect();
    config.max_message_bytes = MAX;
    config.ban_duration = BAN;
    config.redial_interval = REDIAL;
    config.request_timeout = Duration::from_secs(1);
    config
}

async fn start(config: NetworkConfig) -> Node {
    let (net, events) = Network::start(config).await.unwrap();
    let listen = net.listen_addrs().await.unwrap();
    assert_eq!(listen.len(), 1, "{listen:?}");
    let addr = listen[0].clone().with(Protocol::P2p(net.local_peer_id()));
    Node { net, events, addr }
}

async fn node(bootnodes: &[&Multiaddr]) -> Node {
    start(config(genesis(), Keypair::generate_ed25519(), 0, bootnodes)).await
}

fn port_of(addr: &Multiaddr) -> u16 {
    addr.iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap()
}

/// Three nodes, all connected: a, then b -> a, then c -> a and c -> b.
async fn triangle() -> (Node, Node, Node) {
    let mut a = node(&[]).await;
    let mut b = node(&[&a.addr]).await;
    let mut c = node(&[&a.addr, &b.addr]).await;
    let (ia, ib, ic) = (a.id(), b.id(), c.id());
    a.connected(&[ib, ic]).await;
    b.connected(&[ia, ic]).await;
    c.connected(&[ia, ib]).await;
    for topic in Topic::ALL {
        a.wait_mesh(topic, &[ib, ic]).await;
        b.wait_mesh(topic, &[ia, ic]).await;
        c.wait_mesh(topic, &[ia, ib]).await;
    }
    (a, b, c)
}

fn is_gossip_with(data: &[u8]) -> impl Fn(&NetworkEvent) -> bool + '_ {
    move |e| matches!(e, NetworkEvent::Gossip { data: d, .. } if d == data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_mesh_and_deliver_each_message_once() {
    let (mut a, mut b, mut c) = triangle().await;
    let mut peers = a.net.peers().await.unwrap();
    peers.sort();
    let mut expected = vec![b.id(), c.id()];
    expected.sort();
    assert_eq!(peers, expected);

    let id = a
        .net
        .publish(Topic::Consensus, b"vote 1".to_vec())
        .await
        .unwrap();
    for n in [&mut b, &mut c] {
        let (topic, from, data) = n.gossip(MessageAcceptance::Accept).await;
        assert_eq!(
            (topic, from, data.as_slice()),
            (Topic::Consensus, a.net.local_peer_id(), &b"vote 1"[..])
        );
    }
    // b and c forward to each other after accepting: the message id (hash of the data)
    // dedups the copy, so neither sees it twice, and a never sees its own message.
    for n in [&mut a, &mut b, &mut c] {
        n.assert_quiet("second copy", is_gossip_with(b"vote 1"))
            .await;
    }
    // Publishing the same bytes again is a duplicate, not a second message.
    assert!(matches!(
        a.net.publish(Topic::Consensus, b"vote 1".to_vec()).await,
        Err(PublishError::Duplicate)
    ));
    assert!(!id.0.is_empty());

    // 1 MiB (a block) on the other topic.
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    b.net
        .publish(Topic::Transactions, big.clone())
        .await
        .unwrap();
    // Each gets it straight from b or forwarded by the other (whichever copy arrives first
    // under load): either way one intact copy.
    let (a_id, b_id, c_id) = (a.id(), b.id(), c.id());
    for (n, other) in [(&mut a, c_id), (&mut c, a_id)] {
        let (topic, from, data) = n.gossip(MessageAcceptance::Accept).await;
        assert_eq!(topic, Topic::Transactions);
        assert!(from == b_id || from == other, "from {from}");
        assert!(data == big, "1 MiB payload altered");
    }
    // One byte over max-message-bytes is refused at the source.
    assert!(matches!(
        c.net.publish(Topic::Transactions, vec![7; MAX + 1]).await,
        Err(PublishError::TooLarge { size, max }) if size == MAX + 1 && max == MAX
    ));
    for n in [&mut a, &mut b] {
        n.assert_quiet("oversized message", |e| {
            matches!(e, NetworkEvent::Gossip { .. })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_drops_gossip_above_its_limit() {
    // `big` allows 4 MiB, `small` 2 MiB: a 3 MiB message passes big's own check and must be
    // dropped by small's gossipsub codec.
    let mut small = node(&[]).await;
    let mut big_config = config(genesis(), Keypair::generate_ed25519(), 0, &[&small.addr]);
    big_config.max_message_bytes = 4 * 1024 * 1024;
    let mut big = start(big_config).await;
    small.connected(&[big.id()]).await;
    big.connected(&[small.id()]).await;
    big.wait_mesh(Topic::Transactions, &[small.id()]).await;

    // The limit is on the payload: exactly max-message-bytes arrives.
    big.net
        .publish(Topic::Transactions, vec![2; MAX])
        .await
        .unwrap();
    let (_, _, data) = small.gossip(MessageAcceptance::Accept).await;
    assert!(
        data.len() == MAX && data.iter().all(|b| *b == 2),
        "got {} bytes",
        data.len()
    );

    // 3 MiB passes big's own check; small's codec refuses the frame (and resets that stream).
    big.net
        .publish(Topic::Transactions, vec![1; 3 * 1024 * 1024])
        .await
        .unwrap();
    // It never shows up, and the peers stay connected. (Gossipsub resets the stream that
    // carried it, so a peer that sends oversized frames only cuts its own link to us; honest
    // nodes share one max-message-bytes and never send one: see docs/network.md.)
    small
        .assert_quiet("oversized message", |e| {
            matches!(e, NetworkEvent::Gossip { .. })
        })
        .await;
    assert_eq!(small.net.peers().await.unwrap(), vec![big.id()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messages_are_not_forwarded() {
    // A line: a - b - c. a and c only reach each other through b.
    let mut b = node(&[]).await;
    let mut a = node(&[&b.addr]).await;
    let mut c = node(&[&b.addr]).await;
    b.connected(&[a.id(), c.id()]).await;
    a.connected(&[b.id()]).await;
    c.connected(&[b.id()]).await;
    b.wait_mesh(Topic::Consensus, &[a.id(), c.id()]).await;
    c.wait_mesh(Topic::Consensus, &[b.id()]).await;
    assert_eq!(a.net.peers().await.unwrap(), vec![b.id()]);
    assert_eq!(c.net.peers().await.unwrap(), vec![b.id()]);

    a.net
        .publish(Topic::Consensus, b"bad".to_vec())
        .await
        .unwrap();
    let (_, _, data) = b.gossip(MessageAcceptance::Reject).await;
    assert_eq!(data, b"bad");
    a.net
        .publish(Topic::Consensus, b"good".to_vec())
        .await
        .unwrap();
    let (_, _, data) = b.gossip(MessageAcceptance::Accept).await;
    assert_eq!(data, b"good");
    // b forwards in order, so had "bad" been forwarded, c would see it before "good".
    let (_, from, data) = c.gossip(MessageAcceptance::Accept).await;
    assert_eq!((from, data.as_slice()), (b.id(), &b"good"[..]));
    c.assert_quiet("rejected message", is_gossip_with(b"bad"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_round_trip_and_timeout() {
    let mut a = node(&[]).await;
    let mut b = node(&[&a.addr]).await;
    a.connected(&[b.id()]).await;
    b.connected(&[a.id()]).await;

    // Round trip, and an empty response is a response.
    let (net, b_id) = (a.net.clone(), b.id());
    let call = tokio::spawn(async move { net.request(b_id, b"blocks 1..10".to_vec()).await });
    let (peer, data, respond) = b.request().await;
    assert_eq!((peer, data.as_slice()), (a.id(), &b"blocks 1..10"[..]));
    respond.send(vec![9; 100_000]).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), vec![9; 100_000]);

    let net = a.net.clone();
    let call = tokio::spawn(async move { net.request(b_id, Vec::new()).await });
    let (_, data, respond) = b.request().await;
    assert!(data.is_empty());
    respond.send(Vec::new()).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), Vec::<u8>::new());

    // b holds the request without answering: a times out after its request timeout (1 s).
    let net = a.net.clone();
    let started = Instant::now();
    let call = tokio::spawn(async move { net.request(b_id, b"stall".to_vec()).await });
    let (_, _, held) = b.request().await;
    let result = call.await.unwrap();
    assert!(
        matches!(result, Err(RequestError::Timeout { peer }) if peer == b_id),
        "{result:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    drop(held);

    // b drops the responder: a gets an error at once rather than waiting for the timeout.
    let net = a.net.clone();
    let started = Instant::now();
    let call = tokio::spawn(async move { net.request(b_id, b"refuse".to_vec()).await });
    drop(b.request().await);
    assert!(call.await.unwrap().is_err());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // Limits and unknown peers fail without touching the wire.
    assert!(matches!(
        a.net.request(b_id, vec![0; MAX + 1]).await,
        Err(RequestError::TooLarge { .. })
    ));
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    assert!(matches!(
        a.net.request(stranger, b"hi".to_vec()).await,
        Err(RequestError::DialFailure { .. })
    ));
    // The connection survived all of it.
    let net = a.net.clone();
    let call = tokio::spawn(async move { net.request(b_id, b"again".to_vec()).await });
    let (_, _, respond) = b.request().await;
    respond.send(b"ok".to_vec()).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_chain_is_disconnected_and_gets_no_gossip() {
    let mut a = node(&[]).await;
    let mut b = node(&[&a.addr]).await;
    a.connected(&[b.id()]).await;
    b.connected(&[a.id()]).await;
    a.wait_mesh(Topic::Consensus, &[b.id()]).await;

    let other = B256::repeat_byte(0x22);
    let mut x = start(config(other, Keypair::generate_ed25519(), 0, &[&a.addr])).await;
    let theirs = a.incompatible(x.id()).await;
    assert_eq!(theirs, Some(ProtocolNames::new(other).identify_version()));
    let ours = x.incompatible(a.id()).await;
    assert_eq!(ours, Some(ProtocolNames::new(genesis()).identify_version()));
    assert!(!a.net.peers().await.unwrap().contains(&x.id()));
    assert!(x.net.peers().await.unwrap().is_empty());

    a.net
        .publish(Topic::Consensus, b"for this chain".to_vec())
        .await
        .unwrap();
    let (_, _, data) = b.gossip(MessageAcceptance::Accept).await;
    assert_eq!(data, b"for this chain");
    // No gossip and no peer from another chain. (Whether x re-dials only after a ban duration
    // is not asserted here: identify may legitimately report the peer again on a second
    // connection opened by the start-up dial racing the first re-dial, which made the check
    // flaky on a loaded machine.)
    x.assert_quiet("gossip or peer of another chain", |e| {
        matches!(
            e,
            NetworkEvent::Gossip { .. } | NetworkEvent::PeerConnected(_)
        )
    })
    .await;
    // Nobody on x's chain: publishing finds no peer, a sync request is refused.
    assert!(matches!(
        x.net.publish(Topic::Consensus, b"hello?".to_vec()).await,
        Err(PublishError::NoPeers)
    ));
    assert!(x.net.request(a.id(), b"blocks".to_vec()).await.is_err());
}

/// A node of the previous wire version (its names: `/bttd/<g>/consensus`, `sync/1`, identify
/// `bttd/<g>`) on the same chain is refused like a node of another chain: disconnected at
/// identify, never a peer, none of its gossip heard, and it cannot sync from us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_the_previous_wire_version_is_refused() {
    let mut a = node(&[]).await;
    let mut old_config = config(genesis(), Keypair::generate_ed25519(), 0, &[&a.addr]);
    old_config.wire_version = 1;
    let mut old = start(old_config).await;
    let theirs = a.incompatible(old.id()).await;
    assert_eq!(
        theirs,
        Some(ProtocolNames::for_version(genesis(), 1).identify_version())
    );
    let ours = old.incompatible(a.id()).await;
    assert_eq!(ours, Some(ProtocolNames::new(genesis()).identify_version()));
    assert!(!a.net.peers().await.unwrap().contains(&old.id()));
    assert!(matches!(
        old.net.publish(Topic::Consensus, b"v1 vote".to_vec()).await,
        Err(PublishError::NoPeers)
    ));
    assert!(old.net.request(a.id(), b"status".to_vec()).await.is_err());
    a.assert_quiet("gossip or peer of the previous wire version", |e| {
        matches!(
            e,
            NetworkEvent::Gossip { .. } | NetworkEvent::PeerConnected(_)
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_peer_stays_out_until_the_ban_expires() {
    let mut a = node(&[]).await;
    // b has a as bootnode, so it re-dials a every 200 ms throughout the ban.
    let mut b = node(&[&a.addr]).await;
    let (ia, ib) = (a.id(), b.id());
    a.connected(&[ib]).await;
    b.connected(&[ia]).await;

    let banned_at = Instant::now();
    a.net.ban(ib, "sent an invalid block").await.unwrap();
    a.disconnected(ib).await;
    b.disconnected(ia).await;
    assert_eq!(a.net.banned_peers().await.unwrap(), vec![ib]);
    // Outbound is refused too.
    assert!(matches!(
        a.net.dial(b.addr.clone()).await,
        Err(DialError::Failed { .. })
    ));

    // The next PeerConnected on either side comes only after the ban (1.5 s) has run out.
    a.connected(&[ib]).await;
    let elapsed = banned_at.elapsed();
    assert!(
        elapsed >= BAN,
        "reconnected after {elapsed:?}, ban is {BAN:?}"
    );
    assert!(
        elapsed < BAN + Duration::from_secs(3),
        "reconnect took {elapsed:?}"
    );
    b.connected(&[ia]).await;
    assert!(banned_at.elapsed() >= BAN);
    assert!(a.net.banned_peers().await.unwrap().is_empty());

    // Banning ourselves is refused.
    a.net.ban(ia, "oops").await.unwrap();
    assert!(a.net.banned_peers().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_is_redialled_by_its_peers() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("p2p.key");
    let key = load_or_create_keypair(&key_file).unwrap();
    let mut b = start(config(genesis(), key, 0, &[])).await;
    let port = port_of(&b.addr);
    let mut a = node(&[&b.addr]).await;
    let (ia, ib) = (a.id(), b.id());
    a.connected(&[ib]).await;
    b.connected(&[ia]).await;

    b.net.shutdown().await.unwrap();
    assert!(matches!(b.net.peers().await, Err(P2pError::Stopped)));
    a.disconnected(ib).await;

    // Same key file, same port, no bootnodes: a must find it again on its own.
    let key = load_or_create_keypair(&key_file).unwrap();
    let mut b = start(config(genesis(), key, port, &[])).await;
    assert_eq!(b.id(), ib);
    a.connected(&[ib]).await;
    b.connected(&[ia]).await;
    b.wait_mesh(Topic::Consensus, &[ia]).await;
    a.wait_mesh(Topic::Consensus, &[ib]).await;
    b.net
        .publish(Topic::Consensus, b"back".to_vec())
        .await
        .unwrap();
    let (_, from, data) = a.gossip(MessageAcceptance::Accept).await;
    assert_eq!((from, data.as_slice()), (ib, &b"back"[..]));
}

#[test]
fn message_ids_hash_topic_and_data() {
    let names = ProtocolNames::new(genesis());
    let message = |topic: Topic, data: &[u8], seq: u64| libp2p::gossipsub::Message {
        source: Some(PeerId::random()),
        data: data.to_vec(),
        sequence_number: Some(seq),
        topic: names.topic(topic).hash(),
    };
    let id = super::behaviour::message_id;
    assert_eq!(
        id(&message(Topic::Consensus, b"x", 1)),
        id(&message(Topic::Consensus, b"x", 2))
    );
    assert_ne!(
        id(&message(Topic::Consensus, b"x", 1)),
        id(&message(Topic::Consensus, b"y", 1))
    );
    assert_ne!(
        id(&message(Topic::Consensus, b"x", 1)),
        id(&message(Topic::Transactions, b"x", 1))
    );
}

/// Latency figures on loopback (not a pass/fail test): four fully connected nodes; time from
/// `publish` until all three others have the message, and sync round trips. Run with
/// `cargo nextest run --cargo-profile release -p bttd-node --lib p2p::tests::latency_figures --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures; run on demand"]
async fn latency_figures() {
    let mut nodes = vec![node(&[]).await];
    for i in 1..4 {
        let boots: Vec<Multiaddr> = nodes.iter().map(|n| n.addr.clone()).collect();
        let refs: Vec<&Multiaddr> = boots.iter().collect();
        nodes.push(start(config(genesis(), Keypair::generate_ed25519(), 0, &refs)).await);
        assert_eq!(nodes.len(), i + 1);
    }
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.id()).collect();
    for n in nodes.iter_mut() {
        let others: Vec<PeerId> = ids.iter().copied().filter(|p| *p != n.id()).collect();
        n.connected(&others).await;
        n.wait_mesh(Topic::Consensus, &others).await;
    }
    let mut publisher = nodes.remove(0);
    // Receivers accept everything and report (tag, arrival) to the publisher.
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel::<(u64, Instant)>();
    for mut n in nodes {
        let tx = arrivals_tx.clone();
        tokio::spawn(async move {
            while let Some(event) = n.events.recv().await {
                match event {
                    NetworkEvent::Gossip {
                        from,
                        message_id,
                        data,
                        ..
                    } => {
                        let at = Instant::now();
                        n.net
                            .report(message_id, from, MessageAcceptance::Accept)
                            .await
                            .unwrap();
                        let tag = u64::from_be_bytes(data[..8].try_into().unwrap());
                        let _ = tx.send((tag, at));
                    }
                    NetworkEvent::Request { data, respond, .. } => {
                        let _ = respond.send(data);
                    }
                    _ => {}
                }
            }
        });
    }
    let percentile = |samples: &mut Vec<Duration>, p: f64| {
        samples.sort();
        samples[((samples.len() as f64 - 1.0) * p).round() as usize]
    };
    for (label, size, rounds) in [
        ("consensus 256 B", 256usize, 300u64),
        ("block 1 MiB", 1 << 20, 30),
    ] {
        let mut samples = Vec::new();
        let (mut publish_times, mut firsts) = (Vec::new(), Vec::new());
        for tag in 0..rounds {
            let tag = tag + size as u64 * 1_000_000;
            let mut data = vec![0u8; size];
            data[..8].copy_from_slice(&tag.to_be_bytes());
            let sent = Instant::now();
            publisher.net.publish(Topic::Consensus, data).await.unwrap();
            publish_times.push(sent.elapsed());
            let mut got = 0;
            let mut first = None;
            let mut last = sent;
            while got < 3 {
                let (t, at) = tokio::time::timeout(WAIT, arrivals.recv())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(t, tag);
                got += 1;
                last = last.max(at);
                first = Some(first.map_or(at, |f: Instant| f.min(at)));
            }
            samples.push(last - sent);
            firsts.push(first.unwrap() - sent);
        }
        println!(
            "  {label}: publish call p50 {:?}, first receiver p50 {:?}",
            percentile(&mut publish_times, 0.5),
            percentile(&mut firsts, 0.5)
        );
        println!(
            "gossip {label} to 3 peers: p50 {:?} p99 {:?} max {:?} ({} samples)",
            percentile(&mut samples, 0.5),
            percentile(&mut samples, 0.99),
            samples.last().unwrap(),
            samples.len()
        );
    }
    let target = ids[1];
    for (label, size) in [("1 KiB", 1024usize), ("1 MiB", 1 << 20)] {
        let mut samples = Vec::new();
        for _ in 0..100 {
            let sent = Instant::now();
            let response = publisher.net.request(target, vec![5; size]).await.unwrap();
            samples.push(sent.elapsed());
            assert_eq!(response.len(), size);
        }
        println!(
            "sync request+response {label} echoed: p50 {:?} p99 {:?} ({} samples)",
            percentile(&mut samples, 0.5),
            percentile(&mut samples, 0.99),
            samples.len()
        );
    }
    let _ = publisher.events.consensus.try_recv();
}

/// A flood of transaction gossip that the node does not read fast enough fills only the
/// transaction queue: the consensus message published after it still arrives. (With one
/// queue for both, the flood filled it and the vote was dropped.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_flood_never_crowds_out_a_consensus_message() {
    let mut a = node(&[]).await;
    let mut b_config = config(genesis(), Keypair::generate_ed25519(), 0, &[&a.addr]);
    b_config.event_buffer = 16;
    let mut b = start(b_config).await;
    a.connected(&[b.id()]).await;
    b.connected(&[a.id()]).await;
    for topic in Topic::ALL {
        a.wait_mesh(topic, &[b.id()]).await;
    }
    for i in 0..200u32 {
        a.net
            .publish(Topic::Transactions, i.to_be_bytes().to_vec())
            .await
            .unwrap();
    }
    a.net
        .publish(Topic::Consensus, b"vote after the flood".to_vec())
        .await
        .unwrap();
    // b is busy for a second (all of it arrives meanwhile), then reads only its consensus
    // queue, as its engine does.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, b.events.consensus.recv())
            .await
            .expect("the vote never arrived: dropped behind the transactions")
            .expect("consensus queue closed");
        if let NetworkEvent::Gossip { topic, data, .. } = event {
            assert_eq!(
                topic,
                Topic::Consensus,
                "a transaction on the consensus queue"
            );
            assert_eq!(data, b"vote after the flood");
            break;
        }
    }
    let mut queued = 0;
    while let Ok(event) = b.events.transactions.try_recv() {
        assert!(matches!(
            event,
            NetworkEvent::Gossip {
                topic: Topic::Transactions,
                ..
            }
        ));
        queued += 1;
    }
    assert!(
        queued <= 16,
        "{queued} transactions queued beyond the buffer"
    );
}

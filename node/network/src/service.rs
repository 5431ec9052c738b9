//! The swarm task: owns the libp2p swarm and turns swarm events into [`NetworkEvent`]s and
//! handle commands into swarm calls. Everything that touches the swarm happens here, in one
//! task, so no lock is needed around it.
//!
//! Peer life cycle: a connection becomes a *peer* (`PeerConnected`) only when identify has
//! shown the same protocol version (`bttd/<genesis-hex>/2`); a different version, or no identify
//! at all, disconnects it at once. Bans go through libp2p's block list, which closes the
//! peer's connections and denies new ones in both directions until the ban expires.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    time::Duration,
};

use futures::{StreamExt, stream::FuturesUnordered};
use libp2p::{
    Multiaddr, PeerId, Swarm, gossipsub, identify, noise,
    request_response::{self, OutboundRequestId, ResponseChannel},
    swarm::{
        SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
    tcp, yamux,
};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    behaviour::{Behaviour, BehaviourEvent},
    config::{NetworkConfig, parse_bootnode},
    error::{DialError, P2pError, PublishError, RequestError},
    handle::{Command, NetworkEvent, NetworkEvents, NetworkHandle},
    protocol::{ProtocolNames, Topic},
};

const TARGET: &str = "bttd::p2p";
/// Connections with no protocol activity (no gossip subscription, no open request) close
/// after this long; gossipsub keeps subscribed peers alive, so in practice only strays close.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `Network::start` waits for the listener to report its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
const COMMAND_BUFFER: usize = 1024;

type PendingResponse =
    Pin<Box<dyn Future<Output = (PeerId, ResponseChannel<Vec<u8>>, Option<Vec<u8>>)> + Send>>;

/// Entry point of the network service.
pub struct Network;

impl Network {
    /// Builds the swarm, starts listening, subscribes to both topics and spawns the swarm task
    /// on the current tokio runtime. Returns once the listen address is known.
    pub async fn start(config: NetworkConfig) -> Result<(NetworkHandle, NetworkEvents), P2pError> {
        config.validate()?;
        let names = ProtocolNames::for_version(config.genesis_hash, config.wire_version);
        let local_peer_id = config.keypair.public().to_peer_id();
        let behaviour = Behaviour::new(&config.keypair, &config, &names)?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| P2pError::Swarm(e.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| P2pError::Swarm(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();

        for topic in Topic::ALL {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(names.topic(topic))
                .map_err(|e| P2pError::Swarm(format!("subscribing to {topic:?}: {e}")))?;
        }
        let listen_error = |reason: String| P2pError::Listen {
            addr: config.listen.clone(),
            reason,
        };
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| listen_error(e.to_string()))?;
        let first_addr = tokio::time::timeout(LISTEN_TIMEOUT, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                    SwarmEvent::ListenerError { error, .. } => return Err(error.to_string()),
                    SwarmEvent::ListenerClosed { reason, .. } => {
                        return Err(match reason {
                            Err(e) => e.to_string(),
                            Ok(()) => "listener closed".into(),
                        });
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| listen_error("no listen address within 10s".into()))?
        .map_err(listen_error)?;
        tracing::info!(target: TARGET, peer_id = %local_peer_id, addr = %first_addr, "p2p listening");

        let bootnodes = config
            .bootnodes
            .iter()
            .map(|addr| parse_bootnode(&addr.to_string()))
            .filter(|r| !matches!(r, Ok((peer, _)) if *peer == local_peer_id))
            .collect::<Result<Vec<_>, _>>()?;
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_BUFFER);
        let (transaction_lane_tx, transaction_lane_rx) = mpsc::channel(COMMAND_BUFFER);
        let (events_tx, events_rx) = mpsc::channel(config.event_buffer);
        let (tx_events_tx, tx_events_rx) = mpsc::channel(config.event_buffer);
        let service = Service {
            swarm,
            names,
            events: events_tx,
            tx_events: tx_events_tx,
            max_message_bytes: config.max_message_bytes,
            ban_duration: config.ban_duration,
            request_timeout: config.request_timeout,
            bootnodes,
            verified: HashSet::new(),
            bans: HashMap::new(),
            incompatible: HashMap::new(),
            pending_requests: HashMap::new(),
            pending_responses: FuturesUnordered::new(),
            listen_addrs: vec![first_addr],
        };
        tokio::spawn(service.run(commands_rx, transaction_lane_rx, config.redial_interval));
        let handle = NetworkHandle {
            commands: commands_tx,
            transaction_lane: transaction_lane_tx,
            local_peer_id,
        };
        let events = NetworkEvents {
            consensus: events_rx,
            transactions: tx_events_rx,
        };
        Ok((handle, events))
    }
}

struct Service {
    swarm: Swarm<Behaviour>,
    names: ProtocolNames,
    /// Everything but transaction gossip.
    events: mpsc::Sender<NetworkEvent>,
    /// Transaction gossip.
    tx_events: mpsc::Sender<NetworkEvent>,
    max_message_bytes: usize,
    ban_duration: Duration,
    request_timeout: Duration,
    bootnodes: Vec<(PeerId, Multiaddr)>,
    /// Peers whose identify matched; exactly those got `PeerConnected`.
    verified: HashSet<PeerId>,
    /// Banned peers and when their ban ends.
    bans: HashMap<PeerId, Instant>,
    /// Bootnodes found to be of another chain, and when to try them again (one ban duration
    /// later: re-dialling them every few seconds would only fill the log).
    incompatible: HashMap<PeerId, Instant>,
    pending_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, RequestError>>>,
    /// Inbound requests waiting for the node's answer (bounded by the request timeout).
    pending_responses: FuturesUnordered<PendingResponse>,
    listen_addrs: Vec<Multiaddr>,
}

impl Service {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut transaction_lane: mpsc::Receiver<Command>,
        redial_interval: Duration,
    ) {
        let mut redial = tokio::time::interval(redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = 'service: loop {
            // Every waiting consensus command first: a vote's publish never queues behind
            // transaction reports.
            loop {
                match commands.try_recv() {
                    Ok(Command::Shutdown(reply)) => break 'service Some(reply),
                    Ok(command) => self.on_command(command),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => break 'service None,
                }
            }
            let next_unban = self.bans.values().min().copied();
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => break Some(reply),
                    Some(command) => self.on_command(command),
                    None => break None,
                },
                Some(command) = transaction_lane.recv() => match command {
                    Command::Shutdown(reply) => break Some(reply),
                    command => self.on_command(command),
                },
                _ = redial.tick() => self.redial_bootnodes(),
                Some((peer, channel, response)) = self.pending_responses.next(),
                    if !self.pending_responses.is_empty() => self.respond(peer, channel, response),
                _ = sleep_until(next_unban), if next_unban.is_some() => self.expire_bans(),
            }
        };
        tracing::info!(target: TARGET, "p2p service stopping");
        metrics::gauge!("bttd_p2p_peers").set(0.0);
        // Dropping the swarm closes the listener and every connection before we confirm.
        drop(self);
        drop(commands);
        drop(transaction_lane);
        if let Some(reply) = shutdown {
            let _ = reply.send(());
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Blocked(never)) => match never {},
            SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::debug!(target: TARGET, peer = %peer_id, addr = %endpoint.get_remote_address(), "connection established");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(target: TARGET, peer = %peer_id, remaining = num_established, cause = ?cause, "connection closed");
                if num_established == 0 && self.verified.remove(&peer_id) {
                    tracing::info!(target: TARGET, peer = %peer_id, "peer disconnected");
                    self.update_peer_gauge();
                    self.emit(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(target: TARGET, addr = %address, "p2p listening");
                if !self.listen_addrs.contains(&address) {
                    self.listen_addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                tracing::warn!(target: TARGET, reason = ?reason, "p2p listener closed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(target: TARGET, %error, "p2p listener error");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(target: TARGET, peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => {
                tracing::debug!(target: TARGET, peer = ?peer_id, addr = %send_back_addr, %error, "inbound connection refused or failed");
            }
            _ => {}
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
        match event {
            identify::Event::Received {
                peer_id,
                info,
                connection_id,
            } => {
                let ours = self.names.identify_version();
                if info.protocol_version != ours {
                    tracing::warn!(target: TARGET, peer = %peer_id, theirs = %info.protocol_version, %ours, agent = %info.agent_version, "peer belongs to another chain or wire version: disconnecting");
                    metrics::counter!("bttd_p2p_incompatible_peers_total").increment(1);
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    self.mark_incompatible(peer_id, Some(info.protocol_version));
                } else if self.swarm.is_connected(&peer_id) && self.verified.insert(peer_id) {
                    self.incompatible.remove(&peer_id);
                    tracing::info!(target: TARGET, peer = %peer_id, agent = %info.agent_version, ?connection_id, "peer connected");
                    self.update_peer_gauge();
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
            }
            identify::Event::Error {
                peer_id,
                error,
                connection_id,
            } => {
                if matches!(error, libp2p::swarm::StreamUpgradeError::NegotiationFailed) {
                    tracing::warn!(target: TARGET, peer = %peer_id, "peer does not speak identify: disconnecting");
                    self.swarm.close_connection(connection_id);
                    if !self.verified.contains(&peer_id) {
                        self.mark_incompatible(peer_id, None);
                    }
                } else {
                    tracing::debug!(target: TARGET, peer = %peer_id, %error, "identify failed");
                }
            }
            identify::Event::Sent { .. } | identify::Event::Pushed { .. } => {}
        }
    }

    /// Keeps a peer of another chain (or none) away for a ban duration and tells the node,
    /// once per period: identify may report it again on another connection or stream.
    fn mark_incompatible(&mut self, peer: PeerId, protocol_version: Option<String>) {
        let now = Instant::now();
        let known = self
            .incompatible
            .insert(peer, now + self.ban_duration)
            .is_some_and(|until| until > now);
        if !known {
            self.emit(NetworkEvent::PeerIncompatible {
                peer,
                protocol_version,
            });
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let Some(topic) = self.names.topic_of(&message.topic) else {
                    self.report(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Ignore,
                    );
                    return;
                };
                metrics::counter!("bttd_p2p_gossip_received_total", "topic" => topic.label())
                    .increment(1);
                // Strict validation guarantees a signed source.
                let author = message.source.unwrap_or(propagation_source);
                let event = NetworkEvent::Gossip {
                    topic,
                    from: propagation_source,
                    author,
                    message_id: message_id.clone(),
                    data: message.data,
                };
                if !self.emit(event) {
                    self.report(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Ignore,
                    );
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                tracing::debug!(target: TARGET, peer = %peer_id, %topic, "peer subscribed");
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                tracing::debug!(target: TARGET, peer = %peer_id, %topic, "peer unsubscribed");
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                tracing::debug!(target: TARGET, peer = %peer_id, "peer does not support gossipsub");
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                tracing::warn!(target: TARGET, peer = %peer_id, ?failed_messages, "slow peer: gossip messages dropped");
            }
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let (respond, answer) = oneshot::channel();
                    let timeout = self.request_timeout;
                    self.pending_responses.push(Box::pin(async move {
                        let response = tokio::time::timeout(timeout, answer)
                            .await
                            .ok()
                            .and_then(Result::ok);
                        (peer, channel, response)
                    }));
                    self.emit(NetworkEvent::Request {
                        peer,
                        data: request,
                        respond,
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(target: TARGET, %peer, %error, "sync request failed");
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let error = match error {
                        request_response::OutboundFailure::Timeout => {
                            RequestError::Timeout { peer }
                        }
                        request_response::OutboundFailure::DialFailure => {
                            RequestError::DialFailure { peer }
                        }
                        request_response::OutboundFailure::ConnectionClosed => {
                            RequestError::ConnectionClosed { peer }
                        }
                        request_response::OutboundFailure::UnsupportedProtocols => {
                            RequestError::UnsupportedProtocol { peer }
                        }
                        request_response::OutboundFailure::Io(e) => RequestError::Io {
                            peer,
                            reason: e.to_string(),
                        },
                    };
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(target: TARGET, %peer, %error, "inbound sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn respond(
        &mut self,
        peer: PeerId,
        channel: ResponseChannel<Vec<u8>>,
        response: Option<Vec<u8>>,
    ) {
        let Some(response) = response else {
            tracing::debug!(target: TARGET, %peer, "sync request not answered; dropping it");
            return;
        };
        if response.len() > self.max_message_bytes {
            tracing::error!(target: TARGET, %peer, size = response.len(), max = self.max_message_bytes, "sync response larger than max-message-bytes; not sent");
            return;
        }
        if self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!(target: TARGET, %peer, "sync response too late: the request stream is gone");
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let _ = reply.send(self.publish(topic, data));
            }
            Command::Request { peer, data, reply } => {
                if data.len() > self.max_message_bytes {
                    let _ = reply.send(Err(RequestError::TooLarge {
                        size: data.len(),
                        max: self.max_message_bytes,
                    }));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, data);
                self.pending_requests.insert(id, reply);
            }
            Command::Ban { peer, reason } => self.ban(peer, reason),
            Command::Report {
                message_id,
                source,
                acceptance,
            } => self.report(&message_id, &source, acceptance),
            Command::Dial { addr, reply } => {
                let result = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|e| DialError::Failed {
                        addr,
                        reason: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.verified.iter().copied().collect());
            }
            Command::MeshPeers(topic, reply) => {
                let hash = self.names.topic(topic).hash();
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .mesh_peers(&hash)
                    .copied()
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Banned(reply) => {
                let _ = reply.send(self.bans.keys().copied().collect());
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::Shutdown(_) => unreachable!("handled by the run loop"),
        }
    }

    fn publish(
        &mut self,
        topic: Topic,
        data: Vec<u8>,
    ) -> Result<gossipsub::MessageId, PublishError> {
        if data.len() > self.max_message_bytes {
            return Err(PublishError::TooLarge {
                size: data.len(),
                max: self.max_message_bytes,
            });
        }
        let size = data.len();
        let result = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.names.topic(topic).clone(), data);
        match result {
            Ok(id) => {
                metrics::counter!("bttd_p2p_gossip_published_total", "topic" => topic.label())
                    .increment(1);
                Ok(id)
            }
            Err(gossipsub::PublishError::Duplicate) => Err(PublishError::Duplicate),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Err(PublishError::NoPeers),
            Err(gossipsub::PublishError::MessageTooLarge) => Err(PublishError::TooLarge {
                size,
                max: self.max_message_bytes,
            }),
            Err(e) => Err(PublishError::Gossipsub(e.to_string())),
        }
    }

    fn report(
        &mut self,
        id: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        let label = match acceptance {
            gossipsub::MessageAcceptance::Accept => "accept",
            gossipsub::MessageAcceptance::Reject => "reject",
            gossipsub::MessageAcceptance::Ignore => "ignore",
        };
        metrics::counter!("bttd_p2p_gossip_validation_total", "result" => label).increment(1);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acceptance);
    }

    fn ban(&mut self, peer: PeerId, reason: String) {
        if peer == *self.swarm.local_peer_id() {
            tracing::warn!(target: TARGET, %reason, "refusing to ban ourselves");
            return;
        }
        let until = Instant::now() + self.ban_duration;
        let label = super::ban::ban_reason_label(&reason);
        tracing::warn!(target: TARGET, %peer, %reason, label, duration = ?self.ban_duration, "banning peer");
        metrics::counter!("bttd_p2p_bans_total", "reason" => label).increment(1);
        self.bans.insert(peer, until);
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        metrics::gauge!("bttd_p2p_banned_peers").set(self.bans.len() as f64);
    }

    fn expire_bans(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.bans.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            tracing::info!(target: TARGET, %peer, "ban expired");
        }
        metrics::gauge!("bttd_p2p_banned_peers").set(self.bans.len() as f64);
        // A bootnode whose ban just ended is dialled now rather than at the next tick.
        self.redial_bootnodes();
    }

    fn redial_bootnodes(&mut self) {
        let now = Instant::now();
        self.incompatible.retain(|_, retry_at| *retry_at > now);
        for (peer, addr) in &self.bootnodes {
            if self.swarm.is_connected(peer)
                || self.bans.contains_key(peer)
                || self.incompatible.contains_key(peer)
            {
                continue;
            }
            let opts = DialOpts::peer_id(*peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(error) = self.swarm.dial(opts) {
                tracing::debug!(target: TARGET, %peer, %error, "bootnode dial not started");
            }
        }
    }

    /// Hands an event to the node without ever blocking the swarm; returns false (and counts
    /// the drop) when the node is not keeping up.
    fn emit(&self, event: NetworkEvent) -> bool {
        let queue = match &event {
            NetworkEvent::Gossip {
                topic: Topic::Transactions,
                ..
            } => &self.tx_events,
            _ => &self.events,
        };
        match queue.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(event)) => {
                tracing::warn!(target: TARGET, event = event.kind(), "event channel full: event dropped");
                metrics::counter!("bttd_p2p_events_dropped_total").increment(1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn update_peer_gauge(&self) {
        metrics::gauge!("bttd_p2p_peers").set(self.verified.len() as f64);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

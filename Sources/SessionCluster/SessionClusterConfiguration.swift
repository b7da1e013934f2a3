import ClusterProtocol
import SessionCore

/// Everything one ``SessionCluster`` node needs: who it is, where it listens, whom it
/// contacts, how many copies to keep, the cluster key, limits and protocol timing.
///
/// Defaults suit a LAN and are explained on each property; ``local(id:)`` is a profile for
/// tests and single-machine runs (127.0.0.1, a free port, faster timing).
///
/// ```swift
/// var configuration = SessionClusterConfiguration(
///     nodeID: "n1", bindAddress: PeerAddress(host: "10.0.0.1", port: 7946),
///     seeds: [PeerAddress("10.0.0.1:7946")!, PeerAddress("10.0.0.2:7946")!],
///     clusterKey: keyBytes)
/// configuration.replicationFactor = 3
/// let cluster = try SessionCluster(configuration: configuration)
/// ```
public struct SessionClusterConfiguration: Sendable {
    /// The protocol core's configuration, which the public properties below read and write.
    /// The runtime fills in the bound address, the incarnation and a random seed at start.
    package var node: NodeConfiguration
    /// Where to listen for peers: TCP for data and UDP for heartbeats, on the same port.
    /// Port 0 picks a free port; ``SessionCluster/boundAddress`` tells which.
    public var bindAddress: PeerAddress
    /// The shared secrets that authenticate every frame (HMAC-SHA256): frames are sent
    /// under the first and accepted under any. 1 to 8 keys with distinct ids, each at least
    /// 16 bytes. Two nodes talk when each has the key the other sends under; see
    /// ``ClusterKey`` for changing keys by rolling restarts.
    public var clusterKeys: [ClusterKey]
    /// The key frames are sent under (the first of ``clusterKeys``). Setting it replaces
    /// ``clusterKeys`` with this one key, id 0. At least 16 bytes; nodes that share no key
    /// cannot talk to each other.
    public var clusterKey: [UInt8] {
        get { clusterKeys.first?.bytes ?? [] }
        set { clusterKeys = [ClusterKey(id: 0, bytes: newValue)] }
    }
    /// The store's sizing, limits and default idle timeout (30 minutes).
    public var store: SessionStoreConfiguration
    /// Frames queued for one peer while its link is down or slow, in bytes, beyond which
    /// the queue is dropped (and counted) and the protocol repairs that peer by state
    /// transfer. A state transfer keeps at most a quarter of it in flight (16 chunks of
    /// 256 KiB at most), so a small bound slows a joiner's fill rather than stopping it.
    /// Default 32 MiB; at least 1 MiB (``minimumQueuedBytesPerPeer``: four chunks, so that a
    /// chunk in flight, one of a transfer it replaced and the delta stream fit together).
    public var maxQueuedBytesPerPeer: Int {
        get { node.maxQueuedBytesPerPeer }
        set { node.maxQueuedBytesPerPeer = newValue }
    }
    /// The smallest ``maxQueuedBytesPerPeer`` a node starts with: four state-transfer chunks.
    public static let minimumQueuedBytesPerPeer = 4 * 256 * 1024
    /// The first pause before reconnecting a failed link; it doubles per failure. Default 50 ms.
    public var reconnectInitialDelay: Duration = .milliseconds(50)
    /// The longest pause between reconnect attempts. Default 2 s.
    public var reconnectMaxDelay: Duration = .seconds(2)
    /// How long a connection attempt may take. Default 1 s.
    public var connectTimeout: Duration = .seconds(1)
    /// How long data sent on a peer link may stay unacknowledged before the link is closed
    /// and reconnected (TCP_USER_TIMEOUT; idle links are probed after as long). Default 2 s:
    /// far above a LAN's round trip, yet a link a firewall cut reconnects within about that
    /// long of the heal instead of waiting out TCP's retransmission backoff.
    public var linkStallTimeout: Duration = .seconds(2)
    /// Mutual TLS on the peer links (see ``PeerTLSConfiguration``). Default nil: frames are
    /// authenticated, not encrypted, so keep the peer network private.
    public var peerTLS: PeerTLSConfiguration?
    /// The most accepted peer connections awaiting their handshake at once; at the cap a
    /// new one pushes out the oldest waiting one (counted in
    /// `session_cluster_peer_connections_closed_total{reason="over_limit"}`), so strangers
    /// opening connections without end cannot keep a member's link out. Links that completed
    /// their handshake are not counted. Default 64.
    public var maxInboundPeerConnections: Int = 64
    /// How long an accepted peer connection may take to deliver its first authenticated
    /// frame before it is closed: a stranger cannot hold a connection (or a half-sent
    /// frame's buffer) open. Default 10 s.
    public var peerHandshakeTimeout: Duration = .seconds(10)
    /// How long an accepted peer connection may carry no frame before it is closed; the
    /// peer reconnects when it next sends. Heartbeats travel over UDP, so a quiet cluster's
    /// links do go idle. Default 5 minutes.
    public var peerIdleTimeout: Duration = .seconds(300)
    /// The first pause before binding the UDP endpoint again once a send error closed it;
    /// it doubles per failure, up to ``reconnectMaxDelay``. Default 10 ms.
    public var datagramReopenDelay: Duration = .milliseconds(10)
    /// The most live sessions one principal may have across the cluster; a sign-in beyond it
    /// ends that principal's oldest sessions (earliest signed in). Enforced after each
    /// sign-in, so concurrent sign-ins settle on the newest. Default nil: no limit.
    public var maxSessionsPerPrincipal: Int?
    /// The longest a graceful shutdown waits, after telling the cluster it leaves, for the
    /// leader to move this node's partitions and for queued frames to drain. Default 2 s
    /// (a leave takes about a heartbeat round and a view change).
    public var shutdownDrainTime: Duration = .seconds(2)

    /// Creates a configuration with the documented defaults.
    ///
    /// - Parameters:
    ///   - nodeID: This node's stable name (`--id`).
    ///   - bindAddress: Where to listen for peers.
    ///   - seeds: Addresses to contact at start; may include this node's own address, so
    ///     every node can be started with the same list. Empty: this node starts alone.
    ///   - clusterKey: The shared secret, at least 16 bytes, as key id 0; set
    ///     ``clusterKeys`` for several.
    public init(nodeID: NodeID, bindAddress: PeerAddress, seeds: [PeerAddress], clusterKey: [UInt8]) {
        self.node = NodeConfiguration(id: nodeID, address: bindAddress, incarnation: 0, seeds: seeds)
        self.bindAddress = bindAddress
        self.clusterKeys = [ClusterKey(id: 0, bytes: clusterKey)]
        self.store = SessionStoreConfiguration()
    }

    /// How the transport backs off reconnecting a link (``reconnectInitialDelay`` doubling
    /// up to ``reconnectMaxDelay``).
    var socketRecovery: SocketRecovery {
        SocketRecovery(
            initialDelayMilliseconds: reconnectInitialDelay.wholeMilliseconds,
            maximumDelayMilliseconds: reconnectMaxDelay.wholeMilliseconds)
    }

    /// This node's name.
    public var nodeID: NodeID {
        get { node.id }
        set { node.id = newValue }
    }

    /// Addresses contacted at start.
    public var seeds: [PeerAddress] {
        get { node.seeds }
        set { node.seeds = newValue }
    }

    /// Copies of each session: the owner plus `replicationFactor - 1` backups. Default 2.
    public var replicationFactor: Int {
        get { node.replicationFactor }
        set { node.replicationFactor = newValue }
    }

    /// The write concern of calls that name none. Default `.replicated(1)`: no acknowledged
    /// write is lost when any one node dies.
    public var writeConcern: WriteConcern {
        get { node.defaultWriteConcern }
        set { node.defaultWriteConcern = newValue }
    }

    /// Partitions sessions hash to; every node of a cluster must use the same number.
    /// Default 271 (prime), which spreads well over up to a few dozen nodes.
    public var partitionCount: Int {
        get { node.partitionCount }
        set { node.partitionCount = newValue }
    }

    /// Heartbeat period. Default 100 ms.
    public var heartbeatInterval: Duration {
        get { .milliseconds(node.heartbeatIntervalMilliseconds) }
        set { node.heartbeatIntervalMilliseconds = newValue.wholeMilliseconds }
    }

    /// Silence after which a peer is suspect and probed through others. Default 300 ms.
    public var suspectAfter: Duration {
        get { .milliseconds(node.suspectAfterMilliseconds) }
        set { node.suspectAfterMilliseconds = newValue.wholeMilliseconds }
    }

    /// Silence after which the leader removes a peer. Default 600 ms, equal to ``lease``
    /// plus ``maxClockDrift``: the wait lease safety imposes anyway.
    public var downAfter: Duration {
        get { .milliseconds(node.downAfterMilliseconds) }
        set { node.downAfterMilliseconds = newValue.wholeMilliseconds }
    }

    /// The range each node draws its election timeout from. Default 400–800 ms.
    public var electionTimeout: ClosedRange<Duration> {
        get { .milliseconds(node.electionTimeoutMilliseconds.lowerBound) ... .milliseconds(node.electionTimeoutMilliseconds.upperBound) }
        set { node.electionTimeoutMilliseconds = newValue.lowerBound.wholeMilliseconds...newValue.upperBound.wholeMilliseconds }
    }

    /// How long a heartbeat answered by the leader lets a member acknowledge writes.
    /// Default 500 ms (five heartbeats, so four lost replies do not stop a healthy owner).
    public var lease: Duration {
        get { .milliseconds(node.leaseMilliseconds) }
        set { node.leaseMilliseconds = newValue.wholeMilliseconds }
    }

    /// The most two nodes' clocks may run apart in rate over a lease. Default 100 ms.
    public var maxClockDrift: Duration {
        get { .milliseconds(node.maxClockDriftMilliseconds) }
        set { node.maxClockDriftMilliseconds = newValue.wholeMilliseconds }
    }

    /// A write not acknowledged by enough replicas within this fails with
    /// ``SessionClusterError/replicationTimeout``. Default 2 s.
    public var writeTimeout: Duration {
        get { .milliseconds(node.writeTimeoutMilliseconds) }
        set { node.writeTimeoutMilliseconds = newValue.wholeMilliseconds }
    }

    /// How often last-access moves (touches) are shipped to backups. Default 5 s.
    public var touchFlushInterval: Duration {
        get { .milliseconds(node.touchFlushIntervalMilliseconds) }
        set { node.touchFlushIntervalMilliseconds = newValue.wholeMilliseconds }
    }

    /// Size and count limits of sessions and attributes.
    public var limits: SessionLimits {
        get { store.limits }
        set { store.limits = newValue }
    }

    /// A key for development and tests only: every node that uses it can read and forge
    /// the cluster's frames. `session-node serve` uses it, with a warning, when no key file
    /// is given.
    public static let developmentClusterKey: [UInt8] = Array("swift-session-cluster development key; not for production".utf8)

    /// A profile for tests and single-machine runs: binds 127.0.0.1 on a free port, uses
    /// the development key, and runs the protocol about twice as fast as the LAN defaults
    /// (heartbeats every 50 ms, down after 400 ms, leases of 300 ms) while leaving room for a
    /// busy CI machine.
    ///
    /// A node alone has no backup, so it can only acknowledge `.local` writes: set
    /// ``writeConcern`` to `.local` for a single-node cluster.
    ///
    /// - Parameters:
    ///   - id: The node's name.
    ///   - seeds: Peers to contact; empty starts a cluster of this node alone, which others
    ///     may join.
    public static func local(id: NodeID, seeds: [PeerAddress] = []) -> SessionClusterConfiguration {
        var configuration = SessionClusterConfiguration(
            nodeID: id, bindAddress: PeerAddress(host: "127.0.0.1", port: 0), seeds: seeds,
            clusterKey: developmentClusterKey)
        configuration.heartbeatInterval = .milliseconds(50)
        configuration.suspectAfter = .milliseconds(200)
        configuration.downAfter = .milliseconds(400)
        configuration.electionTimeout = .milliseconds(150) ... .milliseconds(300)
        configuration.lease = .milliseconds(300)
        configuration.maxClockDrift = .milliseconds(50)
        // Generous: tests assert what happens, not how fast, and share the machine with others.
        configuration.writeTimeout = .seconds(5)
        configuration.reconnectInitialDelay = .milliseconds(20)
        configuration.reconnectMaxDelay = .milliseconds(500)
        configuration.shutdownDrainTime = .seconds(1)
        return configuration
    }
}

extension SessionClusterConfiguration {
    /// The first setting a node cannot run with, in a sentence, or nil. The timers are held
    /// in whole milliseconds, so a positive duration under 1 ms counts as zero.
    func problem() -> String? {
        if !(1...255).contains(nodeID.rawValue.utf8.count) {
            // A connection's handshake carries the id in at most 255 bytes.
            return "a node id must be 1 to 255 bytes of UTF-8, got \(nodeID.rawValue.utf8.count)"
        }
        if maxQueuedBytesPerPeer < Self.minimumQueuedBytesPerPeer {
            return "maxQueuedBytesPerPeer must be at least \(Self.minimumQueuedBytesPerPeer) bytes "
                + "(four state-transfer chunks), got \(maxQueuedBytesPerPeer)"
        }
        if partitionCount < 1 { return "partitionCount must be at least 1, got \(partitionCount)" }
        if replicationFactor < 1 { return "replicationFactor must be at least 1, got \(replicationFactor)" }
        let timers: [(String, Int64)] = [
            ("heartbeatInterval", node.heartbeatIntervalMilliseconds), ("suspectAfter", node.suspectAfterMilliseconds),
            ("downAfter", node.downAfterMilliseconds), ("electionTimeout", node.electionTimeoutMilliseconds.lowerBound),
            ("lease", node.leaseMilliseconds), ("writeTimeout", node.writeTimeoutMilliseconds),
            ("touchFlushInterval", node.touchFlushIntervalMilliseconds),
        ]
        if let (name, milliseconds) = timers.first(where: { $0.1 < 1 }) {
            return "\(name) must be at least 1 ms, got \(milliseconds) ms"
        }
        if node.maxClockDriftMilliseconds < 0 { return "maxClockDrift must not be negative" }
        // Each of these is renewed or answered once per heartbeat: one no longer than a
        // heartbeat runs out between two of them in a healthy cluster.
        let heartbeat = node.heartbeatIntervalMilliseconds
        let renewed: [(String, Int64)] = [
            ("lease", node.leaseMilliseconds), ("suspectAfter", node.suspectAfterMilliseconds),
            ("electionTimeout's lower bound", node.electionTimeoutMilliseconds.lowerBound),
        ]
        if let (name, milliseconds) = renewed.first(where: { $0.1 <= heartbeat }) {
            return "\(name) (\(milliseconds) ms) must be longer than heartbeatInterval (\(heartbeat) ms)"
        }
        if node.downAfterMilliseconds < node.suspectAfterMilliseconds {
            return "downAfter (\(node.downAfterMilliseconds) ms) must not be shorter than suspectAfter "
                + "(\(node.suspectAfterMilliseconds) ms)"
        }
        return nil
    }
}

import ClusterProtocol

/// How a simulated run is set up.
public struct SimulationConfiguration {
    /// Nodes in the cluster.
    public var nodes: Int
    /// The seed every random choice derives from.
    public var seed: UInt64
    /// How many of the nodes are seeds (the founding members). Default: all.
    public var seedCount: Int = .max
    /// Copies of each session.
    public var replicationFactor: Int = 2
    /// Partitions. Default 271, as in production.
    public var partitionCount: Int = 271
    /// Queue bound per peer; small in simulation so the fallback to state transfer runs.
    public var maxQueuedBytesPerPeer: Int = 2 * 1024
    /// One-way latency of a message.
    public var latencyMilliseconds: ClosedRange<Int64> = 1...3
    /// Message faults from the start.
    public var faults = MessageFaults.none
    /// After every input a node handles, ask it for the deltas that writes wait on
    /// (``ClusterNode/flushForWaitingWrites(now:)``), as the runtime does at the end of each
    /// event-loop turn. Off: deltas leave only on the flush timer. The sweep runs both.
    public var flushAtEndOfTurn = true
    /// Run the deliberately broken variant that acknowledges before any backup applied.
    public var brokenAcknowledgeBeforeReplication = false
    /// How each node's transport meets a local send error; the runtime's by default.
    public var transport = TransportModel.runtime
    /// Called with a line for every delivery and tick, to debug a seed.
    public var trace: ((String) -> Void)?
    /// A last change to every node's configuration.
    public var adjust: (inout NodeConfiguration) -> Void = { _ in }

    /// A run of `nodes` nodes from `seed`.
    public init(nodes: Int, seed: UInt64) {
        self.nodes = nodes
        self.seed = seed
    }
}

/// Faults applied to individual messages.
public struct MessageFaults: Sendable {
    /// Chance a datagram is lost.
    public var datagramDropProbability = 0.0
    /// Chance a datagram arrives twice.
    public var datagramDuplicateProbability = 0.0
    /// Chance a message is held up by `extraDelayMilliseconds` (datagrams overtake each other).
    public var delayProbability = 0.0
    /// The extra delay.
    public var extraDelayMilliseconds: ClosedRange<Int64> = 10...80
    /// Chance a stream message is lost to a connection reset (the protocol must resend).
    public var streamResetProbability = 0.0

    /// No faults.
    public static let none = MessageFaults()
    /// The mix the randomized sweep runs with.
    public static let lossy = MessageFaults(
        datagramDropProbability: 0.05, datagramDuplicateProbability: 0.02, delayProbability: 0.02,
        streamResetProbability: 0.002)

    public init(
        datagramDropProbability: Double = 0, datagramDuplicateProbability: Double = 0, delayProbability: Double = 0,
        extraDelayMilliseconds: ClosedRange<Int64> = 10...80, streamResetProbability: Double = 0
    ) {
        self.datagramDropProbability = datagramDropProbability
        self.datagramDuplicateProbability = datagramDuplicateProbability
        self.delayProbability = delayProbability
        self.extraDelayMilliseconds = extraDelayMilliseconds
        self.streamResetProbability = streamResetProbability
    }
}

/// How a simulated node's transport behaves when its own sends fail (a host firewall
/// refuses them with EPERM, a route is missing), modelled on the runtime's shell
/// (`SessionCluster`'s `DatagramEndpoint` and peer links) so the sweep checks the recovery the
/// runtime really does, and can be shown to catch one that does not recover.
public struct TransportModel: Sendable, Hashable {
    /// A refused datagram closes the node's whole UDP endpoint (what a SwiftNIO channel
    /// write does), instead of failing that one datagram (the runtime sends with `sendto`).
    public var sendErrorClosesDatagramEndpoint = false
    /// A closed UDP endpoint is bound again after ``SocketRecovery``'s backoff.
    public var reopenDatagramEndpoint = true
    /// A stream link that failed reconnects after ``SocketRecovery``'s backoff.
    public var reconnectStreamLinks = true
    /// The first pause before reopening the UDP endpoint (the runtime's default: 10 ms).
    public var datagramReopenDelayMilliseconds: Int64 = 10
    /// The first pause before reconnecting a link (the runtime's default: 50 ms).
    public var reconnectInitialDelayMilliseconds: Int64 = 50
    /// The longest pause between attempts (the runtime's default: 2 s).
    public var reconnectMaxDelayMilliseconds: Int64 = 2_000

    /// What the runtime does.
    public static let runtime = TransportModel()
    /// The runtime before the fix of issue 12: a refused heartbeat closed the UDP endpoint
    /// for good. Broken on purpose; the sweep must catch it.
    public static let brokenEndpointClosedForGood = TransportModel(
        sendErrorClosesDatagramEndpoint: true, reopenDatagramEndpoint: false)
    /// A transport whose links never reconnect once a send or connect failed. Broken on
    /// purpose; the sweep must catch it.
    public static let brokenLinksNeverReconnect = TransportModel(reconnectStreamLinks: false)

    public init(
        sendErrorClosesDatagramEndpoint: Bool = false, reopenDatagramEndpoint: Bool = true, reconnectStreamLinks: Bool = true
    ) {
        self.sendErrorClosesDatagramEndpoint = sendErrorClosesDatagramEndpoint
        self.reopenDatagramEndpoint = reopenDatagramEndpoint
        self.reconnectStreamLinks = reconnectStreamLinks
    }

    func datagramRecovery() -> SocketRecovery {
        var recovery = SocketRecovery(
            initialDelayMilliseconds: datagramReopenDelayMilliseconds, maximumDelayMilliseconds: reconnectMaxDelayMilliseconds)
        recovery.unsafeNeverRetry = !reopenDatagramEndpoint
        return recovery
    }

    func linkRecovery() -> SocketRecovery {
        var recovery = SocketRecovery(
            initialDelayMilliseconds: reconnectInitialDelayMilliseconds, maximumDelayMilliseconds: reconnectMaxDelayMilliseconds)
        recovery.unsafeNeverRetry = !reconnectStreamLinks
        return recovery
    }
}

import ClusterProtocol

/// How a simulated run is set up.
package struct SimulationConfiguration {
    /// Nodes in the cluster.
    package var nodes: Int
    /// The seed every random choice derives from.
    package var seed: UInt64
    /// How many of the nodes are seeds (the founding members). Default: all.
    package var seedCount: Int = .max
    /// Copies of each session.
    package var replicationFactor: Int = 2
    /// Partitions. Default 271, as in production.
    package var partitionCount: Int = 271
    /// Queue bound per peer; small in simulation so the fallback to state transfer runs.
    package var maxQueuedBytesPerPeer: Int = 2 * 1024
    /// Payload bytes per state-transfer chunk; small in simulation so that a transfer runs
    /// as many chunks, two in flight (a quarter of the queue bound), as production's does.
    package var stateTransferChunkBytes: Int = 256
    /// One-way latency of a message.
    package var latencyMilliseconds: ClosedRange<Int64> = 1...3
    /// Message faults from the start.
    package var faults = MessageFaults.none
    /// After every input a node handles, ask it for the deltas that writes wait on
    /// (``Input/endOfTurn``), as the runtime does at the end of each
    /// event-loop turn. Off: deltas leave only on the flush timer. The sweep runs both.
    package var flushAtEndOfTurn = true
    /// Run the deliberately broken variant that acknowledges before any backup applied.
    package var brokenAcknowledgeBeforeReplication = false
    /// How each node's transport meets a local send error; the runtime's by default.
    package var transport = TransportModel.runtime
    /// Called with a line for every delivery and tick, to debug a seed.
    package var trace: ((String) -> Void)?
    /// A last change to every node's configuration.
    package var adjust: (inout NodeConfiguration) -> Void = { _ in }

    /// A run of `nodes` nodes from `seed`.
    package init(nodes: Int, seed: UInt64) {
        self.nodes = nodes
        self.seed = seed
    }
}

/// Faults applied to individual messages.
package struct MessageFaults: Sendable {
    /// Chance a datagram is lost.
    package var datagramDropProbability = 0.0
    /// Chance a datagram arrives twice.
    package var datagramDuplicateProbability = 0.0
    /// Chance a message is held up by `extraDelayMilliseconds` (datagrams overtake each other).
    package var delayProbability = 0.0
    /// The extra delay.
    package var extraDelayMilliseconds: ClosedRange<Int64> = 10...80
    /// Chance a stream message is lost to a connection reset (the protocol must resend).
    package var streamResetProbability = 0.0

    /// No faults.
    package static let none = MessageFaults()
    /// The mix the randomized sweep runs with.
    package static let lossy = MessageFaults(
        datagramDropProbability: 0.05, datagramDuplicateProbability: 0.02, delayProbability: 0.02,
        streamResetProbability: 0.002)

    package init(
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
package struct TransportModel: Sendable, Hashable {
    /// A refused datagram closes the node's whole UDP endpoint (what a SwiftNIO channel
    /// write does), instead of failing that one datagram (the runtime sends with `sendto`).
    package var sendErrorClosesDatagramEndpoint = false
    /// A closed UDP endpoint is bound again after ``SocketRecovery``'s backoff.
    package var reopenDatagramEndpoint = true
    /// A stream link that failed reconnects after ``SocketRecovery``'s backoff.
    package var reconnectStreamLinks = true
    /// The first pause before reopening the UDP endpoint (the runtime's default: 10 ms).
    package var datagramReopenDelayMilliseconds: Int64 = 10
    /// The first pause before reconnecting a link (the runtime's default: 50 ms).
    package var reconnectInitialDelayMilliseconds: Int64 = 50
    /// The longest pause between attempts (the runtime's default: 2 s).
    package var reconnectMaxDelayMilliseconds: Int64 = 2_000

    /// What the runtime does.
    package static let runtime = TransportModel()
    /// The runtime before the fix of issue 12: a refused heartbeat closed the UDP endpoint
    /// for good. Broken on purpose; the sweep must catch it.
    package static let brokenEndpointClosedForGood = TransportModel(
        sendErrorClosesDatagramEndpoint: true, reopenDatagramEndpoint: false)
    /// A transport whose links never reconnect once a send or connect failed. Broken on
    /// purpose; the sweep must catch it.
    package static let brokenLinksNeverReconnect = TransportModel(reconnectStreamLinks: false)

    package init(
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

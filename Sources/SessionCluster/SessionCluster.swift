import ClusterProtocol
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SessionCore
import Synchronization
import WireFormat

/// One node of an embedded, replicated session store: it owns the ``SessionStore`` and the
/// protocol core (`ClusterNode`), and runs them over SwiftNIO: TCP links between nodes for
/// data, UDP for heartbeats, timers from the real clock.
///
/// Run it as a swift-service-lifecycle `Service` next to your HTTP server, or call
/// ``start()`` and ``shutdown()`` yourself:
///
/// ```swift
/// var configuration = SessionClusterConfiguration.local(id: "n1")
/// configuration.writeConcern = .local     // alone: there is no backup to acknowledge
/// let cluster = try SessionCluster(configuration: configuration)
/// try await cluster.start()
/// var session = try await cluster.create()
/// session.setAttribute("cart", AttributeValue(string: "3 apples"))
/// try await cluster.save(session)          // returns once the write concern is met
/// let loaded = try await cluster.load(session.id)
/// await cluster.shutdown()
/// ```
///
/// Reads are served from the local store with no hop when the node holds a current copy
/// (``load(_:touch:)``); writes go to the session's owner, which replicates them to its
/// backups before acknowledging, as the write concern asks. A request that meets a view
/// change (partitions moving between nodes) or a failover is retried for as long as an
/// election can take (the election timeout's upper bound plus two heartbeats: 1 s by
/// default) before it fails with ``SessionClusterError/viewChanged``.
public final class SessionCluster: Service, Sendable {
    private enum State: Sendable {
        case idle
        case starting
        case running(RuntimeHandle, PeerAddress)
        case stopped
    }

    /// The configuration the cluster was made with.
    public let configuration: SessionClusterConfiguration
    /// The local store. Reading it directly skips routing: use ``load(_:touch:)`` instead,
    /// which knows whether the local copy is current.
    package let store: SessionStore
    private let loop: any EventLoop
    private let loopExecutor: LoopTaskExecutor
    private let codec: FrameCodec
    private let tls: PeerTLSContexts?
    let routing: RoutingTable
    let principals: PrincipalIndex
    private let eventHub: SessionEventHub
    private let metrics: ClusterMetrics
    private let logger: Logger
    private let state = Mutex<State>(.idle)

    /// Creates a node; nothing is bound or sent until ``start()`` (or ``run()``).
    ///
    /// - Parameters:
    ///   - configuration: The node's configuration.
    ///   - eventLoopGroup: The node takes one of its loops and runs its protocol core and
    ///     every socket there. Default: NIO's shared singleton group.
    ///   - logger: Logs lifecycle, views, links and refused frames; never session contents
    ///     and never a whole session id.
    /// - Throws: ``SessionClusterError/invalidConfiguration(_:)`` when a cluster key is
    ///   shorter than 16 bytes, there is none or more than 8, or an id is outside 0...7 or
    ///   used twice; when the node id is empty or longer than 255 bytes; the partition
    ///   count or replication factor is below 1 or the clock drift negative;
    ///   ``SessionClusterConfiguration/maxQueuedBytesPerPeer`` is below 1 MiB; a timer is
    ///   under 1 ms, or a lease, suspicion or election timeout is not longer than the
    ///   heartbeat, or `downAfter` is shorter than `suspectAfter`; or when
    ///   ``SessionClusterConfiguration/peerTLS`` names files that do not hold a
    ///   certificate, key or authority.
    public init(
        configuration: SessionClusterConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "session-cluster")
    ) throws(SessionClusterError) {
        self.configuration = configuration
        if let problem = configuration.problem() { throw .invalidConfiguration(problem) }
        let wire: WireConfiguration
        do {
            wire = try WireConfiguration(keys: configuration.clusterKeys.map { WireKey(id: $0.id, bytes: $0.bytes) })
        } catch { throw SessionClusterError(error) }
        self.codec = FrameCodec(configuration: wire)
        self.tls = try configuration.peerTLS.map { (tls) throws(SessionClusterError) in try PeerTLSContexts(tls) }
        self.store = SessionStore(configuration: configuration.store)
        self.loop = eventLoopGroup.next()
        self.loopExecutor = LoopTaskExecutor(loop: loop)
        self.routing = RoutingTable(partitionCount: configuration.node.partitionCount)
        self.principals = PrincipalIndex(clusterKey: configuration.clusterKey)
        self.eventHub = SessionEventHub(node: configuration.nodeID)
        self.metrics = ClusterMetrics(node: configuration.nodeID)
        var logger = logger
        logger[metadataKey: "node"] = "\(configuration.nodeID)"
        self.logger = logger
    }

    /// An executor that runs tasks on the node's event loop. Request handlers that run with
    /// it as their preference (`withTaskExecutorPreference(cluster.taskExecutor) { ... }`)
    /// reach the node without a hop between threads and resume on the same thread when the
    /// write concern is met (on 2 cores, over three runs of `session-bench`: 10-22% less
    /// CPU per replicated update and 5-24% more updates per second than from the shared pool).
    /// Keep blocking work off it: while a handler blocks, so does the node.
    public var taskExecutor: any TaskExecutor { loopExecutor }

    // MARK: - Lifecycle

    /// The address peers reach this node at, once started (the real port when the
    /// configuration asked for port 0).
    public var boundAddress: PeerAddress? {
        state.withLock { state in
            if case .running(_, let address) = state { return address }
            return nil
        }
    }

    /// Binds TCP and UDP on ``SessionClusterConfiguration/bindAddress`` (the same port
    /// number for both) and starts the protocol: contacting the seeds, joining or forming
    /// a view. Returns once bound; ``isReady()`` tells when the node is in a view.
    public func start() async throws {
        let canStart = state.withLock { state in
            guard case .idle = state else { return false }
            state = .starting
            return true
        }
        guard canStart else { return }
        do {
            let (handle, address) = try await bindAndStart()
            state.withLock { $0 = .running(handle, address) }
        } catch {
            state.withLock { $0 = .idle }
            throw error
        }
    }

    private func bindAndStart() async throws -> (RuntimeHandle, PeerAddress) {
        let (loop, store, configuration, codec, tls, metrics, routing, events, logger) = (
            self.loop, self.store, self.configuration, self.codec, self.tls, self.metrics, self.routing, self.eventHub,
            self.logger
        )
        let (handle, errors) = try await loop.submit {
            let runtime = NodeRuntime(
                loop: loop, store: store, configuration: configuration, codec: codec, tls: tls, metrics: metrics,
                routing: routing, events: events, logger: logger)
            let handle = RuntimeHandle(runtime)
            runtime.attach(handle)
            return (handle, runtime.errors)
        }.get()
        let host = configuration.bindAddress.host
        let pending = PendingHandshakes(maximum: configuration.maxInboundPeerConnections)
        let initializer = NodeRuntime.channelInitializer(
            side: .accepting(authenticated: { pending.remove($0) }), handle: handle, codec: codec, tls: tls, configuration: configuration, metrics: metrics, errors: errors, logger: logger)
        // With port 0 the TCP port is free but the same UDP port may not be: try a few.
        let attempts = configuration.bindAddress.port == 0 ? 8 : 1
        var lastError: any Error = ChannelError.unknownLocalAddress
        for _ in 0..<attempts {
            // Accepted links on the node's own loop: their frames reach the core without a
            // hop between threads (a wake-up per read), and the nodes of one process spread
            // over the group's loops instead of sharing the first.
            let server = try await ServerBootstrap(group: loop)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    if let pushedOut = pending.admit(channel) {
                        errors.refused(.overLimit, remote: pushedOut.remoteAddress)
                        pushedOut.close(promise: nil)
                    }
                    channel.closeFuture.whenComplete { _ in pending.remove(channel) }
                    handle.run { $0.registerInbound(channel) }
                    return initializer(channel).flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(
                            InboundLinkDeadlines(
                                handshakeTimeout: configuration.peerHandshakeTimeout, idleTimeout: configuration.peerIdleTimeout,
                                onClose: { errors.refused($0, remote: channel.remoteAddress) }),
                            position: .before(try channel.pipeline.syncOperations.handler(type: InboundFrameHandler.self)))
                    }
                }
                .bind(host: host, port: configuration.bindAddress.port)
                .get()
            guard let port = server.localAddress?.port else {
                try? await server.close()
                continue
            }
            do {
                let datagram = try await NodeRuntime.bindDatagram(
                    host: host, port: port, loop: loop, handle: handle, codec: codec, metrics: metrics, errors: errors,
                    logger: logger
                ).map { NIOLoopBound($0, eventLoop: loop) }.get()
                let address = PeerAddress(host: host, port: port)
                let incarnation = UInt64(WallClock.now().milliseconds)
                try await handle.submit { $0.start(server: server, datagram: datagram.value, address: address, incarnation: incarnation) }
                return (handle, address)
            } catch {
                lastError = error
                try? await server.close()
            }
        }
        throw lastError
    }

    /// Runs the node until graceful shutdown (swift-service-lifecycle), then leaves the
    /// cluster and stops: see ``shutdown()``.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Leaves the cluster gracefully: tells the leader this node leaves, waits until the
    /// leader has moved this node's partitions to their backups (a view without it), keeps
    /// answering state transfers for two heartbeats while queued frames drain, all within
    /// ``SessionClusterConfiguration/shutdownDrainTime``, then closes every socket.
    /// Requests still waiting fail with ``SessionClusterError/notRunning``.
    public func shutdown() async {
        let handle: RuntimeHandle? = state.withLock { state in
            guard case .running(let handle, _) = state else {
                if case .idle = state { state = .stopped }
                return nil
            }
            state = .stopped
            return handle
        }
        guard let handle else {
            eventHub.finish()
            return
        }
        _ = try? await handle.submit { $0.leave() }
        // Wait to be out of the view, then a little longer (two heartbeats) to answer the
        // state transfers the new holders of this node's partitions ask for, and for the
        // links to drain.
        let deadline = ContinuousClock.now + configuration.shutdownDrainTime
        let grace = Duration.milliseconds(2 * configuration.node.heartbeatIntervalMilliseconds)
        var leftAt: ContinuousClock.Instant?
        while ContinuousClock.now < deadline {
            guard let (left, idle) = try? await handle.submit({ ($0.hasLeft, $0.linksAreIdle) }) else { break }
            if left, leftAt == nil { leftAt = .now }
            if let leftAt, idle, ContinuousClock.now - leftAt >= grace { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        let stopped = try? await handle.submit { $0.stop() }
        try? await stopped?.get()
        eventHub.finish()
    }

    // MARK: - Events

    /// The session events of the sessions this node owns, as they happen: `created`,
    /// `invalidated`, `idRotated`, `expired`. The sequence ends when the node shuts down.
    ///
    /// Each event is announced by the node that owned the session when the change reached
    /// the backups the write concern asks for (the default concern, for an expiry), and by
    /// no other node: subscribe on every node to see every session. Across failovers an end
    /// (invalidation, rotation, expiry) is announced at most once. An expiry the owner could
    /// not replicate (it was cut off) is announced by the next owner instead. An expiry is
    /// lost when the owner dies, or the session moves, after a backup applied its end but
    /// before the owner heard of it. An application call that a failover interrupts gets an
    /// error, and its event may not be announced.
    ///
    /// - Parameter limit: Events kept for a subscriber that does not keep up; beyond it
    ///   the oldest are dropped (and counted), so a slow subscriber never slows the node.
    public func events(bufferingNewest limit: Int = 4_096) -> AsyncStream<SessionEvent> {
        eventHub.subscribe(bufferingNewest: limit)
    }

    // MARK: - Sessions

    /// Creates a session and returns once the write concern is met.
    ///
    /// - Parameters:
    ///   - id: The id to use; default a fresh random one, preferably in a partition this
    ///     node owns (the write then needs no hop).
    ///   - attributes: Initial attributes.
    ///   - maxInactive: The idle timeout; default the store's (30 minutes). Zero: never idles out.
    ///   - absoluteTimeout: The session ends this long after creation however active it is.
    ///   - principal: The signed-in user's name, indexed across the cluster
    ///     (``sessions(of:)``, ``invalidateAll(of:)``).
    ///   - concern: How many copies must hold it; default the configuration's.
    /// - Throws: ``SessionClusterError``: `.refused(.duplicateID)` when `id` is taken, a
    ///   limit, or the cluster cannot acknowledge.
    public func create(
        id: SessionID? = nil, attributes: [String: AttributeValue] = [:], maxInactive: Duration? = nil,
        absoluteTimeout: Duration? = nil, principal: String? = nil, concern: WriteConcern? = nil
    ) async throws(SessionClusterError) -> Session {
        let id = id ?? routing.newSessionID()
        let now = WallClock.now()
        if let principal { try await index(id, under: principal, concern: concern) }
        let metadata = SessionMetadata(
            createdAt: now,
            maxInactiveMilliseconds: maxInactive?.wholeMilliseconds ?? store.configuration.defaultMaxInactiveMilliseconds,
            absoluteDeadline: absoluteTimeout.map { now.adding(milliseconds: $0.wholeMilliseconds) }, principal: principal,
            stamp: 1)
        let version = try await write(.create(metadata, SessionChanges(updated: attributes)), to: id, concern: concern)
        if let principal { await enforcePrincipalLimit(principal) }
        return Session(
            id: id, version: version, createdAt: now, lastAccessedAt: now,
            maxInactiveMilliseconds: metadata.maxInactiveMilliseconds, absoluteDeadline: metadata.absoluteDeadline,
            principal: principal, attributes: attributes)
    }

    /// The session `id`, or nil when it is unknown, ended or expired.
    ///
    /// When this node owns the session's partition, holds it in full and its lease is
    /// valid, the read is a lookup in the local store, with no hop to the event loop or
    /// the network: microseconds. Otherwise the node asks the owner.
    ///
    /// - Parameter touch: Also move the last-access time (the sliding idle timeout). The
    ///   touch is local and replicates lazily, coalesced: never a write per request.
    public func load(_ id: SessionID, touch: Bool = true) async throws(SessionClusterError) -> Session? {
        guard let session = try await loadAny(id, touch: touch), !session.isPrincipalIndex else { return nil }
        return session
    }

    /// ``load(_:touch:)``, principal index records included.
    func loadAny(_ id: SessionID, touch: Bool) async throws(SessionClusterError) -> Session? {
        if routing.canServeLocally(id) {
            return store.load(id, now: WallClock.now(), touch: touch)
        }
        return try await read(id, touch: touch)
    }

    /// Saves the changes recorded in `session` (only the changed attributes travel) and
    /// returns the session's new version once the write concern is met. A session without
    /// changes writes and sends nothing.
    @discardableResult
    public func save(_ session: Session, concern: WriteConcern? = nil) async throws(SessionClusterError) -> SessionVersion {
        guard session.hasChanges else { return session.version }
        return try await update(session.id, changes: session.changes, concern: concern)
    }

    /// Applies `changes` to the session `id` without loading it first, and returns the new
    /// version once the write concern is met. Changes to different attributes by
    /// concurrent requests all survive.
    @discardableResult
    public func update(_ id: SessionID, changes: SessionChanges, concern: WriteConcern? = nil) async throws(SessionClusterError) -> SessionVersion {
        guard case .some(.some(let principal)) = changes.principal else {
            return try await write(.update(changes), to: id, concern: concern)
        }
        try await index(id, under: principal, concern: concern)
        let version = try await write(.update(changes), to: id, concern: concern)
        await enforcePrincipalLimit(principal)
        return version
    }

    /// Loads the session, lets `body` change it, and saves the changes.
    ///
    /// - Throws: ``SessionClusterError/refused(_:)`` with `.sessionNotFound` when there is no
    ///   such live session, any other ``SessionClusterError`` from the save, or what `body`
    ///   throws (then nothing is saved).
    public func mutate<Result>(
        _ id: SessionID, concern: WriteConcern? = nil, _ body: (inout Session) throws -> Result
    ) async throws -> Result {
        guard var session = try await load(id) else { throw SessionClusterError.refused(.sessionNotFound(id)) }
        let result = try body(&session)
        try await save(session, concern: concern)
        return result
    }

    /// Ends the session everywhere; no late delta or rejoining node brings it back.
    public func invalidate(_ id: SessionID, concern: WriteConcern? = nil) async throws(SessionClusterError) {
        _ = try await write(.invalidate, to: id, concern: concern)
    }

    /// Moves the session to a new id with the same attributes and ends the old id (the
    /// defence against session fixation, after sign-in). Returns the new id.
    public func rotateID(_ id: SessionID, concern: WriteConcern? = nil) async throws(SessionClusterError) -> SessionID {
        let newID = routing.newSessionID()
        // The new id joins the principal's index before it exists (the index never misses).
        if let principal = try await load(id, touch: false)?.principal {
            try await index(newID, under: principal, concern: concern)
        }
        do {
            _ = try await write(.rotate(to: newID), to: id, concern: concern)
        } catch .deadlineExceeded {
            // Refused past its deadline, the old id stays live; the new session may exist
            // already (its create landed, the answer came back late). Nobody was told of it,
            // and it would stay listed under the principal: end it, past any deadline.
            _ = try? await Self.$writeDeadline.withValue(nil) { try await self.invalidate(newID, concern: concern) }
            throw .deadlineExceeded
        }
        return newID
    }

    /// Moves only the last-access time to now (extends the idle timeout) on the owner.
    public func touch(_ id: SessionID, concern: WriteConcern? = nil) async throws(SessionClusterError) {
        _ = try await write(.touch(WallClock.now()), to: id, concern: concern)
    }

    // MARK: - Principals

    /// The live sessions signed in as `principal`, on every node, oldest sign-in first.
    /// Entries of ended sessions are pruned from the principal's index (a session signed out
    /// since is left listed there until it ends: it may be signed in again).
    public func sessions(of principal: String) async throws(SessionClusterError) -> [Session] {
        let recordID = principals.recordID(of: principal)
        guard let record = try await loadAny(recordID, touch: false), record.isPrincipalIndex else { return [] }
        var live: [Session] = []
        var ended = Set<String>()
        let now = WallClock.now().milliseconds
        for entry in PrincipalIndex.entries(of: record) {
            if let session = try await load(entry.id, touch: false) {
                if session.principal == principal { live.append(session) }
            } else if now - entry.createdAt > PrincipalIndex.pendingGraceMilliseconds {
                ended.insert(entry.id.text)
            }
        }
        if !ended.isEmpty {
            // Best effort: a later read prunes what this one could not. Housekeeping, not the
            // request's own write: no deadline.
            _ = try? await Self.$writeDeadline.withValue(nil) { () async throws(SessionClusterError) in
                try await write(.update(SessionChanges(removed: ended)), to: recordID, concern: nil)
            }
        }
        return live
    }

    /// Ends every session of `principal` across the cluster ("log out everywhere") and
    /// returns how many it ended. A sign-in acknowledged before the call is never missed,
    /// nor a session whose id is rotated while the call runs.
    @discardableResult
    public func invalidateAll(of principal: String, concern: WriteConcern? = nil) async throws(SessionClusterError) -> Int {
        var ended = 0
        // Listed again until nothing is left: a sign-in or rotation that completes meanwhile
        // shows up on the next pass.
        for _ in 0..<3 {
            let live = try await sessions(of: principal)
            guard !live.isEmpty else { break }
            for session in live {
                if try await endFollowingRotations(session.id, concern: concern) { ended += 1 }
            }
        }
        return ended
    }

    /// Invalidates `id`, or the id it was rotated to meanwhile. False when it had ended.
    func endFollowingRotations(_ id: SessionID, concern: WriteConcern?) async throws(SessionClusterError) -> Bool {
        var id = id
        for _ in 0..<4 {
            do {
                try await invalidate(id, concern: concern)
                return true
            } catch .refused(.sessionEnded(_, .rotated(to: let next))) {
                id = next
            } catch .refused(.sessionEnded), .refused(.sessionNotFound) {
                return false
            }
        }
        return false
    }

    /// Adds session `id` to `principal`'s index, creating the index on first use.
    private func index(_ id: SessionID, under principal: String, concern: WriteConcern?) async throws(SessionClusterError) {
        let recordID = principals.recordID(of: principal)
        let (name, value) = PrincipalIndex.entry(id, createdAt: WallClock.now())
        var failure = SessionClusterError.viewChanged
        for _ in 0..<3 {
            do {
                _ = try await write(.update(SessionChanges(updated: [name: value])), to: recordID, concern: concern)
                return
            } catch .refused(.sessionNotFound) {
                let metadata = SessionMetadata(
                    createdAt: WallClock.now(), maxInactiveMilliseconds: 0, absoluteDeadline: nil,
                    principal: PrincipalIndex.recordPrincipal, stamp: 1)
                do {
                    _ = try await write(.create(metadata, SessionChanges(updated: [name: value])), to: recordID, concern: concern)
                    return
                } catch .refused(.duplicateID) {
                    continue  // a concurrent sign-in created it first: add to it
                }
            } catch .refused(.tooManyAttributes(let count, let limit)) {
                // Full of ended sessions' entries: prune, then try again. Still full: the user
                // has more live sessions than a session may hold attributes (a 413).
                failure = .refused(.tooManyAttributes(count: count, limit: limit))
                _ = try await sessions(of: principal)
            }
        }
        throw failure
    }

    /// Ends `principal`'s oldest sessions beyond ``SessionClusterConfiguration/maxSessionsPerPrincipal``.
    /// Every sign-in runs it after its own write, so concurrent sign-ins settle on the newest.
    private func enforcePrincipalLimit(_ principal: String) async {
        guard let limit = configuration.maxSessionsPerPrincipal else { return }
        // The limit is the cluster's rule, not the request's write: a deadline that passes
        // meanwhile must not leave it unenforced.
        await Self.$writeDeadline.withValue(nil) { await enforce(limit, on: principal) }
    }

    private func enforce(_ limit: Int, on principal: String) async {
        do {
            let live = try await sessions(of: principal)
            for session in live.dropLast(max(0, limit)) where live.count > limit {
                _ = try await endFollowingRotations(session.id, concern: nil)
            }
        } catch {
            logger.warning("could not enforce the per-principal session limit", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Status

    /// This node's view of the cluster: term, leader, role, members and their states,
    /// partitions owned and backed, session count, lease.
    public func status() async throws(SessionClusterError) -> ClusterStatus {
        let handle = try runningHandle()
        guard let status = try? await handle.submit({ $0.status }) else { throw .notRunning }
        return status
    }

    /// True once this node is in a view (it may serve and acknowledge).
    public func isReady() async -> Bool {
        guard let handle = try? runningHandle() else { return false }
        return (try? await handle.submit { $0.isReady }) ?? false
    }

    /// Frames refused since start (bad version, authentication, size, ...).
    package var rejectedFrameCount: Int { metrics.rejectedFrames }

    // MARK: - Internals

    /// Closes this node's TCP connections as a network fault would (tests of reconnection).
    func dropConnections() async {
        guard let handle = try? runningHandle() else { return }
        _ = try? await handle.submit { $0.dropConnections() }
    }

    private func runningHandle() throws(SessionClusterError) -> RuntimeHandle {
        let handle: RuntimeHandle? = state.withLock { state in
            if case .running(let handle, _) = state { return handle }
            return nil
        }
        guard let handle else { throw .notRunning }
        return handle
    }

    /// How long a request the core answered with `.retry` (the view changed under it, a
    /// partition is still being filled, or its owner awaits a lease) is retried before the
    /// caller gets ``SessionClusterError/viewChanged``: as long as an election can take, so
    /// that a leader's death costs requests on the other owners a pause, not an error. The
    /// gap between the dead leader's lease and the next one's, over 100 simulated seeds with
    /// the defaults: median 36 ms, 90th percentile 202 ms, longest 303 ms, at the edge of the
    /// fixed 310 ms this replaced; and an election timeout configured longer widens it.
    private var retryBudget: Duration {
        configuration.electionTimeout.upperBound + configuration.heartbeatInterval * 2
    }
    /// The pauses between retries double from the first to the longest.
    private static let firstRetryDelay = Duration.milliseconds(10)
    private static let longestRetryDelay = Duration.milliseconds(160)

    private func write(_ operation: WriteOperation, to id: SessionID, concern: WriteConcern?) async throws(SessionClusterError) -> SessionVersion {
        let deadline = Self.writeDeadline
        return try await request(
            { $0.write(operation, to: id, concern: concern, deadline: deadline, continuation: $1) },
            // The attempt a view change interrupted may have applied; a retry then finds it done.
            settledByRetry: { error in
                guard case .refused(.sessionEnded(_, let reason)) = error else { return nil }
                switch (operation, reason) {
                case (.invalidate, .invalidated): return 0
                case (.rotate(let newID), .rotated(let to)) where newID == to: return 0
                default: return nil
                }
            })
    }

    private func read(_ id: SessionID, touch: Bool) async throws(SessionClusterError) -> Session? {
        try await request({ $0.read(id, touch: touch, continuation: $1) }, settledByRetry: { _ in nil })
    }

    /// Runs one request on the node's event loop, retrying it while the core answers
    /// `.retry`. `settledByRetry` turns an error seen on a retry into the result, when the
    /// error shows that an earlier attempt succeeded.
    private func request<Value: Sendable>(
        _ start: @escaping @Sendable (NodeRuntime, UnsafeContinuation<Result<Value, SessionClusterError>, Never>) -> Void,
        settledByRetry: (SessionClusterError) -> Value?
    ) async throws(SessionClusterError) -> Value {
        var delay = Self.firstRetryDelay
        // Read only once a retry is due: the clock is not on the path of a request that succeeds.
        var giveUpAt: ContinuousClock.Instant?
        while true {
            let handle = try runningHandle()
            let result = await withUnsafeContinuation { continuation in handle.run { start($0, continuation) } }
            switch result {
            case .success(let value):
                return value
            case .failure(let error):
                if giveUpAt != nil, let value = settledByRetry(error) { return value }
                // The attempt a view change interrupted may have been applied: past the
                // deadline, the retry's refusal no longer says "not applied".
                if giveUpAt != nil, case .deadlineExceeded = error { throw .viewChanged }
                guard case .viewChanged = error else { throw error }
                let now = ContinuousClock.now
                let deadline = giveUpAt ?? now + retryBudget
                // A cancelled task's sleep returns at once: retrying would spin until the deadline.
                guard now < deadline, !Task.isCancelled else { throw error }
                giveUpAt = deadline
                try? await Task.sleep(for: min(delay, deadline - now))
                delay = min(delay * 2, Self.longestRetryDelay)
            }
        }
    }
}

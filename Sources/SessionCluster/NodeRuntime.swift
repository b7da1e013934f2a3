import ClusterProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SessionCore
import WireFormat

/// The NIO shell around one ``ClusterNode``: everything here runs on one event loop, so
/// the node (not Sendable) is only ever touched from that loop.
///
/// Every input (a frame, a timer, an application request) calls the node with the
/// wall-clock time and executes the effects it returns. The rest is done once per loop
/// turn, after every input the loop had ready: send the deltas that writes wait for,
/// encode what waits on each link as one frame per peer (the acks for a burst of batches
/// share one header and one authentication code) and flush it, republish the routing
/// table if needed, and re-arm the timer for the node's next deadline.
final class NodeRuntime {
    // Unchecked: every request is resumed exactly once, by whoever removes it from
    // `pendingWrites`/`pendingReads` (or at once), and a checked one costs an allocation per request.
    typealias WriteContinuation = UnsafeContinuation<Result<SessionVersion, SessionClusterError>, Never>
    typealias ReadContinuation = UnsafeContinuation<Result<Session?, SessionClusterError>, Never>

    private struct PendingWrite {
        var continuation: WriteContinuation
        var started: ContinuousClock.Instant
        var concern: WriteConcern?
    }

    private struct PendingRead {
        var continuation: ReadContinuation
        var id: SessionID
        var touch: Bool
    }

    let loop: any EventLoop
    let store: SessionStore
    let configuration: SessionClusterConfiguration
    let codec: FrameCodec
    /// Mutual TLS on peer links, when configured.
    let tls: PeerTLSContexts?
    let metrics: ClusterMetrics
    let events: SessionEventHub
    let routing: RoutingTable
    let logger: Logger
    let errors: TransportErrorReporter

    private var node: ClusterNode?
    private var handle: RuntimeHandle?
    private var serverChannel: (any Channel)?
    private var datagram: DatagramEndpoint?
    /// When to bind the UDP endpoint again should its channel close.
    private var datagramRecovery: SocketRecovery
    private var datagramRetry: Scheduled<Void>?
    private var boundAddress: PeerAddress?
    private var inboundChannels: [ObjectIdentifier: any Channel] = [:]
    private var links: [PeerAddress: PeerLink] = [:]
    private var linksToFlush: [PeerLink] = []
    /// The messages of the frame being encoded, kept between flushes so that its buffer is reused.
    private var bundle: [ClusterMessage] = []
    /// The effects of the input being handled, kept between inputs so that its buffer is reused.
    private var effectBuffer: [Effect] = []
    private var socketAddresses: [PeerAddress: SocketAddress] = [:]
    private var pendingWrites: [RequestID: PendingWrite] = [:]
    private var pendingReads: [RequestID: PendingRead] = [:]
    private var nextRequest: UInt64 = 1
    private var tickTask: Scheduled<Void>?
    private var scheduledTick: Timestamp?
    private var currentView: View?
    private var routingDirty = true
    private var routingValidUntil = Timestamp.zero
    private var turnEndScheduled = false
    private(set) var stopped = false

    init(
        loop: any EventLoop, store: SessionStore, configuration: SessionClusterConfiguration, codec: FrameCodec,
        tls: PeerTLSContexts?,
        metrics: ClusterMetrics, routing: RoutingTable, events: SessionEventHub, logger: Logger
    ) {
        self.events = events
        self.loop = loop
        self.store = store
        self.configuration = configuration
        self.codec = codec
        self.tls = tls
        self.metrics = metrics
        self.routing = routing
        self.logger = logger
        self.errors = TransportErrorReporter(metrics: metrics, logger: logger)
        self.datagramRecovery = SocketRecovery(
            initialDelayMilliseconds: configuration.datagramReopenDelay.wholeMilliseconds,
            maximumDelayMilliseconds: configuration.reconnectMaxDelay.wholeMilliseconds)
    }

    /// Remembers the Sendable handle that channel handlers use to reach this runtime.
    func attach(_ handle: RuntimeHandle) {
        self.handle = handle
    }

    // MARK: - Lifecycle

    /// Starts the protocol core once the transport is bound; `address` is the bound one.
    func start(server: any Channel, datagram: DatagramEndpoint, address: PeerAddress, incarnation: UInt64) {
        serverChannel = server
        boundAddress = address
        adoptDatagram(datagram)
        var nodeConfiguration = configuration.node
        nodeConfiguration.address = address
        nodeConfiguration.incarnation = incarnation
        nodeConfiguration.randomSeed = UInt64.random(in: .min ... .max)
        if nodeConfiguration.seeds.isEmpty { nodeConfiguration.seeds = [address] }
        let node = ClusterNode(configuration: nodeConfiguration, store: store, sessionClock: { _ in WallClock.now() })
        self.node = node
        logger.info("session cluster node starting", metadata: ["address": "\(address)", "seeds": "\(nodeConfiguration.seeds)"])
        let now = MonotonicClock.now()
        run(.start, on: node, now: now)
    }

    /// Tells the cluster this node leaves, so the leader hands its partitions over.
    func leave() {
        guard let node, !stopped else { return }
        let now = MonotonicClock.now()
        run(.leave, on: node, now: now)
    }

    /// True when every message queued for a peer has been written.
    var linksAreIdle: Bool { links.values.allSatisfy(\.isIdle) }

    /// True once a leaving node is out of the view (the leader moved its partitions), or
    /// it is alone and there is nobody to hand over to.
    var hasLeft: Bool {
        guard let node else { return true }
        let status = node.status
        return status.role == .left || status.members.allSatisfy { $0.member.id == configuration.nodeID }
    }

    /// Closes every TCP connection, inbound and outbound, as a network fault would; the
    /// links reconnect on their own. For tests of reconnection.
    func dropConnections() {
        for link in links.values { link.channel?.close(promise: nil) }
        for channel in inboundChannels.values { channel.close(promise: nil) }
    }

    /// Closes every channel and fails the requests still waiting.
    func stop() -> EventLoopFuture<Void> {
        stopped = true
        routing.clear()
        tickTask?.cancel()
        tickTask = nil
        datagramRetry?.cancel()
        datagramRetry = nil
        var closing: [EventLoopFuture<Void>] = []
        for link in links.values {
            link.retry?.cancel()
            if let channel = link.channel { closing.append(channel.close()) }
        }
        links.removeAll()
        for channel in inboundChannels.values { closing.append(channel.close()) }
        inboundChannels.removeAll()
        if let serverChannel { closing.append(serverChannel.close()) }
        if let datagram { closing.append(datagram.channel.close()) }
        for pending in pendingWrites.values { pending.continuation.resume(returning: .failure(.notRunning)) }
        pendingWrites.removeAll()
        for pending in pendingReads.values { pending.continuation.resume(returning: .failure(.notRunning)) }
        pendingReads.removeAll()
        handle = nil
        logger.info("session cluster node stopped")
        // A channel that was already closing fails its close; stopping succeeds regardless.
        return EventLoopFuture.whenAllComplete(closing, on: loop).map { _ in }
    }

    // MARK: - Application requests

    func write(
        _ operation: WriteOperation, to id: SessionID, concern: WriteConcern?, deadline: Timestamp?,
        continuation: WriteContinuation
    ) {
        guard let node, !stopped else { return continuation.resume(returning: .failure(.notRunning)) }
        let requestID = makeRequestID()
        pendingWrites[requestID] = PendingWrite(continuation: continuation, started: .now, concern: concern)
        let now = MonotonicClock.now()
        run(.write(operation, to: id, concern: concern, requestID: requestID, deadline: deadline), on: node, now: now)
    }

    func read(_ id: SessionID, touch: Bool, continuation: ReadContinuation) {
        guard let node, !stopped else { return continuation.resume(returning: .failure(.notRunning)) }
        let now = MonotonicClock.now()
        if node.canServeReadLocally(id, now: now) {
            return continuation.resume(returning: .success(store.load(id, now: WallClock.now(), touch: touch)))
        }
        let requestID = makeRequestID()
        pendingReads[requestID] = PendingRead(continuation: continuation, id: id, touch: touch)
        run(.read(id, touch: touch, requestID: requestID), on: node, now: now)
    }

    var status: ClusterStatus? { node?.status }

    var isReady: Bool { !stopped && (node?.isReady ?? false) }

    private func makeRequestID() -> RequestID {
        defer { nextRequest += 1 }
        return RequestID(nextRequest)
    }

    // MARK: - Inputs from the network and the clock

    func receive(_ frame: ReceivedFrame) {
        guard let node, !stopped else { return }
        metrics.received(frame)
        let now = MonotonicClock.now()
        for message in frame.messages {
            // A message of the bundle may stop the node (it left the view): the rest are moot.
            guard !stopped else { return }
            logger.trace("received", metadata: ["from": "\(message.senderID?.rawValue ?? "?")", "message": "\(message.traceSummary)"])
            run(.message(message), on: node, now: now)
        }
    }

    /// Remembers an accepted connection, to close it at shutdown. It may live on another
    /// event loop of the group; its close reaches back through the handle.
    func registerInbound(_ channel: any Channel) {
        guard !stopped, let handle else { return channel.close(promise: nil) }
        let key = ObjectIdentifier(channel)
        inboundChannels[key] = channel
        channel.closeFuture.whenComplete { _ in handle.run { $0.inboundChannels[key] = nil } }
    }

    private func fireTick() {
        tickTask = nil
        scheduledTick = nil
        guard let node, !stopped else { return }
        let now = MonotonicClock.now()
        run(.tick, on: node, now: now)
    }

    // MARK: - Executing effects

    /// Hands `input` to the node and carries out its effects, then makes sure the turn ends
    /// with ``endTurn()``.
    private func run(_ input: Input, on node: ClusterNode, now: Timestamp) {
        execute(input, on: node, now: now)
        scheduleTurnEnd()
    }

    /// The node appends its effects to a buffer the runtime keeps, so no array is allocated
    /// per input. A nested call (none is expected) finds the buffer taken and uses a fresh one.
    private func execute(_ input: Input, on node: ClusterNode, now: Timestamp) {
        var effects = [Effect]()
        swap(&effects, &effectBuffer)
        node.handle(input, now: now, into: &effects)
        execute(effects, now: now)
        effects.removeAll(keepingCapacity: true)
        swap(&effects, &effectBuffer)
    }

    /// Runs ``endTurn()`` after the tasks and I/O events the loop already has (other frames
    /// of the same read, queued requests), so that what they send to one peer shares a frame.
    private func scheduleTurnEnd() {
        guard !turnEndScheduled else { return }
        turnEndScheduled = true
        loop.assumeIsolated().execute { self.endTurn() }
    }

    private func endTurn() {
        turnEndScheduled = false
        guard let node, !stopped else { return }
        let now = MonotonicClock.now()
        // A closed-loop writer's throughput is its latency: rather than wait for the flush
        // timer, writes waiting for backups ship at the end of the turn that made them.
        execute(.endOfTurn, on: node, now: now)
        flush()
        metrics.sessions.record(store.count)
        metrics.storeBytes.record(store.byteCount)
        refreshRouting(now: now)
        scheduleTick(now: now)
    }

    private func execute(_ effects: [Effect], now: Timestamp) {
        for effect in effects {
            switch effect {
            case .send(let message, let member, let channel):
                send(message, to: member, over: channel)
            case .completeWrite(let requestID, let result):
                completeWrite(requestID, result)
            case .completeRead(let requestID, let result):
                completeRead(requestID, result)
            case .installedView(let view):
                installed(view)
            case .event(let event):
                metrics.event(event)
                events.publish(event)
                logger.debug("session event", metadata: ["event": "\(event)", "session": "\(event.id.redacted)"])
            case .disconnect(let member):
                disconnect(member.address)
            case .refusedPastDeadline(let session):
                metrics.writePastDeadline()
                logger.debug("refused a write past its deadline", metadata: ["session": "\(session.redacted)"])
            }
        }
    }

    private func completeWrite(_ requestID: RequestID, _ result: Result<SessionVersion, ClusterFailure>) {
        guard let pending = pendingWrites.removeValue(forKey: requestID) else { return }
        if case .success = result {
            metrics.ackLatency(ContinuousClock.now - pending.started, concern: pending.concern)
        }
        pending.continuation.resume(returning: result.mapError(SessionClusterError.init))
    }

    /// Answers a read. Expiry is judged on the wall clock, as the store judges it (the
    /// `now` of the turn is the core's monotonic time).
    private func completeRead(_ requestID: RequestID, _ result: ReadResult) {
        guard let pending = pendingReads.removeValue(forKey: requestID) else { return }
        let now = WallClock.now()
        switch result {
        case .found(let delta):
            pending.continuation.resume(returning: .success(Self.session(from: delta, now: now)))
        case .notModified:
            pending.continuation.resume(returning: .success(store.load(pending.id, now: now, touch: pending.touch)))
        case .notFound:
            pending.continuation.resume(returning: .success(nil))
        case .failed(let failure):
            pending.continuation.resume(returning: .failure(SessionClusterError(failure)))
        }
    }

    /// The session a read reply carries: nil for an ended, expired or metadata-less one.
    static func session(from delta: SessionDelta, now: Timestamp) -> Session? {
        guard delta.kind != .invalidate, let metadata = delta.metadata else { return nil }
        var attributes: [String: AttributeValue] = [:]
        for change in delta.attributes {
            if let value = change.value { attributes[change.name] = value }
        }
        let session = Session(
            id: delta.id, version: delta.version, createdAt: metadata.createdAt, lastAccessedAt: delta.lastAccessedAt,
            maxInactiveMilliseconds: metadata.maxInactiveMilliseconds, absoluteDeadline: metadata.absoluteDeadline,
            principal: metadata.principal, attributes: attributes)
        return session.isExpired(at: now) ? nil : session
    }

    private func installed(_ view: View) {
        metrics.viewChanges.increment()
        if let previous = currentView {
            let remaining = Set(view.members.map(\.id))
            let lost = previous.members.filter { !remaining.contains($0.id) && $0.id != configuration.nodeID }
            if !lost.isEmpty {
                metrics.failovers.increment(by: Int64(lost.count))
                logger.warning("members left the view", metadata: ["members": "\(lost.map(\.id.rawValue))"])
            }
        }
        currentView = view
        routingDirty = true
        logger.info(
            "installed view",
            metadata: [
                "term": "\(view.term)", "epoch": "\(view.epoch)", "leader": "\(view.leader)",
                "members": "\(view.members.map(\.id.rawValue))",
            ])
    }

    /// Republishes which partitions may be read locally, for the instant `now` plus one
    /// heartbeat interval: what holds then held all along (leases only run out).
    private func refreshRouting(now: Timestamp) {
        guard let node else { return }
        let window = max(configuration.node.heartbeatIntervalMilliseconds, 2)
        guard routingDirty || now.adding(milliseconds: window / 2) >= routingValidUntil else { return }
        let horizon = now.adding(milliseconds: window)
        let partitions = PartitionID.all(routing.partitionCount)
        let servable = partitions.map { node.canServeReadsLocally(in: $0, now: horizon) }
        let owned = partitions.map { node.isOwner(of: $0) }
        routing.publish(RoutingTable.Snapshot(servable: servable, owned: owned, validUntil: horizon))
        routingDirty = false
        routingValidUntil = horizon
    }

    private func scheduleTick(now: Timestamp) {
        guard let node, !stopped else { return }
        let deadline = node.nextTickDeadline
        if let scheduledTick, tickTask != nil, scheduledTick <= deadline { return }
        tickTask?.cancel()
        // At least 1 ms, so a deadline already past cannot spin the loop.
        let delay = max(deadline.milliseconds(since: now), 1)
        scheduledTick = deadline
        tickTask = loop.assumeIsolated().scheduleTask(in: .milliseconds(delay)) { self.fireTick() }
    }

    // MARK: - Sending

    private func send(_ message: ClusterMessage, to member: Member, over channel: Effect.Channel) {
        logger.trace("send", metadata: ["to": "\(member)", "channel": "\(channel)", "message": "\(message.traceSummary)"])
        switch channel {
        case .datagram:
            guard let datagram, let address = socketAddress(of: member.address) else { return }
            let frame = codec.encode(message)
            metrics.sent([message], to: member.metricsLabel, frame: frame)
            if let error = datagram.send(frame.bytes, to: address) {
                errors.report(error, at: TransportErrorSite(transport: .udp, operation: .send), peer: member.metricsLabel)
            }
        case .stream:
            sendOnStream(message, to: member)
        }
    }

    private func socketAddress(of address: PeerAddress) -> SocketAddress? {
        if let resolved = socketAddresses[address] { return resolved }
        guard let resolved = try? SocketAddress.makeAddressResolvingHost(address.host, port: address.port) else {
            logger.warning("cannot resolve peer address", metadata: ["peer": "\(address)"])
            return nil
        }
        socketAddresses[address] = resolved
        return resolved
    }

    private func sendOnStream(_ message: ClusterMessage, to member: Member) {
        let link = links[member.address] ?? makeLink(to: member.address)
        let size = message.estimatedBodyBytes
        if link.queuedBytes + link.unwrittenBytes + size > configuration.maxQueuedBytesPerPeer {
            link.refreshUnwrittenBytes()
        }
        if link.queuedBytes + link.unwrittenBytes + size > configuration.maxQueuedBytesPerPeer {
            metrics.queueOverflow(peer: member.address)
            logger.warning(
                "send queue overflow; dropping queued frames and the connection",
                metadata: ["peer": "\(member.address)", "queuedBytes": "\(link.queuedBytes + link.unwrittenBytes)"])
            link.dropQueue()
            if let channel = link.channel {
                link.channel = nil
                channel.close(promise: nil)
            }
        }
        link.peerLabel = member.metricsLabel
        link.queue.append((message, size))
        link.queuedBytes += size
        if link.channel != nil {
            markForFlush(link)
        } else {
            connect(link)
        }
    }

    private func makeLink(to address: PeerAddress) -> PeerLink {
        let link = PeerLink(address: address, recovery: configuration.socketRecovery)
        links[address] = link
        return link
    }

    private func markForFlush(_ link: PeerLink) {
        guard !link.needsFlush else { return }
        link.needsFlush = true
        linksToFlush.append(link)
    }

    /// Encodes each link's queue as frames (one, unless it is larger than a bundle should
    /// be) and writes them.
    private func flush() {
        for link in linksToFlush {
            link.needsFlush = false
            guard let channel = link.channel, let linkCodec = link.codec, !link.queue.isEmpty else { continue }
            var start = 0
            while start < link.queue.count {
                var end = start + 1
                var bytes = link.queue[start].bytes
                while end < link.queue.count, bytes + link.queue[end].bytes <= Self.maxBundleBodyBytes {
                    bytes += link.queue[end].bytes
                    end += 1
                }
                bundle.removeAll(keepingCapacity: true)
                for index in start..<end { bundle.append(link.queue[index].message) }
                let frame = linkCodec.encode(bundle, over: link.history)
                metrics.sent(bundle, to: link.peerLabel, frame: frame)
                channel.write(ByteBuffer(bytes: frame.bytes), promise: nil)
                start = end
            }
            bundle.removeAll(keepingCapacity: true)
            link.clearSentQueue()
            channel.flush()
            link.refreshUnwrittenBytes()
        }
        linksToFlush.removeAll(keepingCapacity: true)
    }

    /// A bundle stops growing here, so that one frame does not hold up the link for long
    /// nor need a large buffer at the peer; a single larger message still goes alone.
    static let maxBundleBodyBytes = 256 * 1024

    private func disconnect(_ address: PeerAddress) {
        guard let link = links.removeValue(forKey: address) else { return }
        link.retry?.cancel()
        link.dropQueue()
        link.channel?.close(promise: nil)
        logger.debug("link dropped by the protocol", metadata: ["peer": "\(address)"])
    }

    // MARK: - Connecting

    private func connect(_ link: PeerLink) {
        guard !stopped, let handle, link.channel == nil, !link.connecting, link.retry == nil else { return }
        link.connecting = true
        let address = link.address
        let side = LinkSide.connecting(sender: configuration.nodeID) { channel, linkCodec in
            handle.run { $0.linkEstablished(address, channel: channel, codec: linkCodec) }
        }
        let initializer = Self.channelInitializer(
            side: side, handle: handle, codec: codec, tls: tls, configuration: configuration, metrics: metrics, errors: errors,
            logger: logger)
        ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(configuration.connectTimeout.wholeMilliseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer(initializer)
            .connect(host: link.address.host, port: link.address.port)
            .assumeIsolated()
            .whenComplete { result in self.connected(link, result) }
    }

    private func connected(_ link: PeerLink, _ result: Result<any Channel, any Error>) {
        link.connecting = false
        switch result {
        case .success(let channel):
            guard !stopped, links[link.address] === link else { return channel.close(promise: nil) }
            link.channel = channel
            // Frames wait for this connection's handshake: the last one's codec and history
            // (left by an overflow, which drops the channel without `linkClosed`) are void.
            link.codec = nil
            link.history = LinkHistory()
            link.unwrittenBytes = 0
            link.recovery.opened()
            logger.debug("link up", metadata: ["peer": "\(link.address)"])
            channel.closeFuture.assumeIsolated().whenComplete { _ in self.linkClosed(link, channel: channel) }
            // Frames wait for the handshake (`linkEstablished`).
        case .failure(let error):
            errors.report(error, at: TransportErrorSite(transport: .tcp, operation: .connect), peer: link.peerLabel)
            scheduleReconnect(link)
        }
    }

    /// The connection's handshake is done: its frames go out under its own codec.
    private func linkEstablished(_ address: PeerAddress, channel: any Channel, codec linkCodec: FrameCodec) {
        guard !stopped, let link = links[address], link.channel === channel else { return channel.close(promise: nil) }
        link.codec = linkCodec
        // The peer decodes this connection with a fresh history; so must we encode.
        link.history = LinkHistory()
        markForFlush(link)
        flush()
    }

    private func linkClosed(_ link: PeerLink, channel: any Channel) {
        guard link.channel === channel else { return }
        link.channel = nil
        link.codec = nil
        logger.debug("link down", metadata: ["peer": "\(link.address)"])
        guard !stopped, links[link.address] === link else { return }
        scheduleReconnect(link)
    }

    /// Waits out the backoff, then reconnects if frames are waiting; otherwise the next
    /// frame for this peer reconnects.
    private func scheduleReconnect(_ link: PeerLink) {
        guard !stopped, link.retry == nil else { return }
        let now = MonotonicClock.now()
        guard let at = link.recovery.failed(now: now) else { return }
        link.retry = loop.assumeIsolated().scheduleTask(in: .milliseconds(at.milliseconds(since: now))) {
            link.retry = nil
            if !link.queue.isEmpty { self.connect(link) }
        }
    }

    /// Which end of a peer connection a pipeline serves. Connections carry frames one way,
    /// from the connector to the acceptor, after the handshake (``LinkHandshake``).
    enum LinkSide: Sendable {
        /// Accepted: send the challenge, check the hello (then `authenticated` is told), decode frames.
        case accepting(authenticated: @Sendable (any Channel) -> Void)
        /// Connected: answer the challenge as `sender`; `established` gets the connection's codec.
        case connecting(sender: NodeID, established: @Sendable (any Channel, FrameCodec) -> Void)
    }

    /// The pipeline of every TCP link, inbound or outbound: the handshake, frames in, bad
    /// frames counted and the link closed, socket errors counted.
    ///
    /// Data a peer does not acknowledge within ``SessionClusterConfiguration/linkStallTimeout``
    /// closes the connection (TCP_USER_TIMEOUT), and an idle connection is probed
    /// (keepalive): a link whose packets a firewall drops would otherwise sit in TCP's
    /// retransmission backoff for minutes, holding the protocol's messages, and keep
    /// retrying long after the network healed instead of reconnecting at once.
    static func channelInitializer(
        side: LinkSide, handle: RuntimeHandle, codec: FrameCodec, tls: PeerTLSContexts?, configuration: SessionClusterConfiguration,
        metrics: ClusterMetrics, errors: TransportErrorReporter, logger: Logger
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        let stallMilliseconds = Int(clamping: max(configuration.linkStallTimeout.wholeMilliseconds, 1))
        let keepaliveIdleSeconds = Int(clamping: max(configuration.linkStallTimeout.wholeMilliseconds / 1000, 1))
        return { channel in
            channel.eventLoop.makeCompletedFuture {
                if let options = channel.syncOptions {
                    try options.setOption(.tcpOption(.init(rawValue: CInt(TCP_USER_TIMEOUT))), value: stallMilliseconds)
                    try options.setOption(.socketOption(.so_keepalive), value: 1)
                    try options.setOption(.tcpOption(.init(rawValue: CInt(TCP_KEEPIDLE))), value: keepaliveIdleSeconds)
                    try options.setOption(.tcpOption(.init(rawValue: CInt(TCP_KEEPINTVL))), value: 1)
                    try options.setOption(.tcpOption(.init(rawValue: CInt(TCP_KEEPCNT))), value: 3)
                }
                switch side {
                case .accepting(let authenticated):
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.server)) }
                    let challenge = LinkHandshake.nonce()
                    try channel.pipeline.syncOperations.addHandler(ChallengeSender(challenge: challenge))
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(
                            FrameDecoder(
                                codec: codec, challenge: challenge, requiresCertifiedSender: tls != nil,
                                onHello: { authenticated(channel) })))
                case .connecting(let sender, let established):
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls.client, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        HandshakeInitiator(
                            codec: codec, sender: sender, timeout: configuration.peerHandshakeTimeout,
                            onEstablished: { established(channel, $0) },
                            onRejected: { error, address in errors.rejected(error, from: address) }))
                }
                try channel.pipeline.syncOperations.addHandler(
                    InboundFrameHandler(
                        onFrame: { frame in handle.receive(frame) },
                        onRejected: { error, address in errors.rejected(error, from: address) },
                        onError: { error, address in
                            errors.report(
                                error, at: TransportErrorSite(transport: .tcp, operation: .receive),
                                peer: address.map { "\($0)" })
                        }))
            }
        }
    }

    // MARK: - The UDP endpoint

    /// Binds the UDP endpoint: each datagram is one frame for the runtime.
    static func bindDatagram(
        host: String, port: Int, loop: any EventLoop, handle: RuntimeHandle, codec: FrameCodec, metrics: ClusterMetrics,
        errors: TransportErrorReporter, logger: Logger
    ) -> EventLoopFuture<DatagramEndpoint> {
        return DatagramEndpoint.bind(host: host, port: port, loop: loop) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        DatagramFrameHandler(
                            codec: codec, onFrame: { frame in handle.receive(frame) },
                            onRejected: { error, address in errors.rejected(error, from: address) },
                            onError: { error, address in
                                errors.report(
                                    error, at: TransportErrorSite(transport: .udp, operation: .receive),
                                    peer: address.map { "\($0)" })
                            }))
                }
            }
    }

    /// Uses `endpoint` as the UDP endpoint and watches it: if it closes while the node
    /// runs, a new one is bound.
    private func adoptDatagram(_ endpoint: DatagramEndpoint) {
        datagram = endpoint
        endpoint.channel.closeFuture.assumeIsolated().whenComplete { _ in self.datagramClosed(endpoint) }
    }

    /// Without a UDP endpoint the node could neither send nor hear a heartbeat again, and
    /// would lose every lease for good.
    private func datagramClosed(_ endpoint: DatagramEndpoint) {
        endpoint.invalidate()
        guard datagram === endpoint else { return }
        datagram = nil
        guard !stopped else { return }
        logger.warning("UDP endpoint closed; binding it again", metadata: ["address": "\(boundAddress.map { "\($0)" } ?? "?")"])
        scheduleDatagramReopen()
    }

    private func scheduleDatagramReopen() {
        guard !stopped, datagramRetry == nil else { return }
        let now = MonotonicClock.now()
        guard let at = datagramRecovery.failed(now: now) else { return }
        datagramRetry = loop.assumeIsolated().scheduleTask(in: .milliseconds(at.milliseconds(since: now))) {
            self.datagramRetry = nil
            self.reopenDatagram()
        }
    }

    private func reopenDatagram() {
        guard !stopped, let handle, let boundAddress, datagram == nil else { return }
        Self.bindDatagram(
            host: boundAddress.host, port: boundAddress.port, loop: loop, handle: handle, codec: codec, metrics: metrics,
            errors: errors, logger: logger
        ).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let endpoint):
                guard !self.stopped else { return endpoint.channel.close(promise: nil) }
                self.datagramRecovery.opened()
                self.metrics.transportReopened(.udp)
                self.logger.info("UDP endpoint bound again", metadata: ["address": "\(boundAddress)"])
                self.adoptDatagram(endpoint)
            case .failure(let error):
                self.errors.report(error, at: TransportErrorSite(transport: .udp, operation: .bind), peer: nil)
                self.scheduleDatagramReopen()
            }
        }
    }

}

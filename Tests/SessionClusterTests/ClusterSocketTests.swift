import ClusterProtocol
import NIOCore
import NIOPosix
import SessionCore
import Testing
import WireFormat

@testable import SessionCluster

/// Real sockets on 127.0.0.1, nodes in this process.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct ClusterSocketTests {
    @Test func singleNodeCreatesSavesAndLoads() async throws {
        try await TestCluster.with(1) { nodes in
            let node = nodes[0]
            var session = try await node.create(attributes: ["user": AttributeValue(string: "ada")])
            session.setAttribute("cart", AttributeValue(string: "2 pears"))
            let version = try await node.save(session)
            #expect(version > session.version)
            let loaded = try #require(try await node.load(session.id))
            #expect(loaded["user"]?.string == "ada")
            #expect(loaded["cart"]?.string == "2 pears")
            #expect(loaded.version == version)
            #expect(try await node.load(SessionID.random()) == nil)
        }
    }

    @Test func writeOnOneNodeIsReadableOnEveryOther() async throws {
        try await TestCluster.with(3) { nodes in
            for (writer, node) in nodes.enumerated() {
                let session = try await node.create(attributes: ["written-by": AttributeValue(string: "node \(writer)")])
                try await nodes[(writer + 1) % 3].update(
                    session.id, changes: SessionChanges(updated: ["step": AttributeValue(string: "two")]))
                for reader in nodes {
                    let loaded = try #require(try await reader.load(session.id))
                    #expect(loaded["written-by"]?.string == "node \(writer)")
                    #expect(loaded["step"]?.string == "two")
                }
            }
        }
    }

    /// Handlers that prefer a node's executor run on its event loop: their writes (local
    /// and forwarded) still complete, concurrent ones on the same loop included, and the
    /// loop is free again after each one.
    @Test func handlersOnANodesExecutorRunOnItsLoopAndTheirWritesLand() async throws {
        try await TestCluster.with(3) { nodes in
            var ids: [SessionID] = []
            for (index, node) in nodes.enumerated() {
                ids.append(try await node.create(attributes: ["created-on": AttributeValue(string: "\(index)")]).id)
            }
            let sessionIDs = ids
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<12 {
                    let node = nodes[writer % 3]
                    group.addTask(executorPreference: node.taskExecutor) {
                        #expect(MultiThreadedEventLoopGroup.currentEventLoop != nil)
                        for (step, id) in sessionIDs.enumerated() {
                            try await node.update(
                                id, changes: SessionChanges(updated: ["writer-\(writer)": AttributeValue(string: "step \(step)")]))
                        }
                    }
                }
                try await group.waitForAll()
            }
            for reader in nodes {
                for id in sessionIDs {
                    let loaded = try #require(try await reader.load(id))
                    for writer in 0..<12 { #expect(loaded["writer-\(writer)"]?.string == "step \(sessionIDs.firstIndex(of: id)!)") }
                }
            }
        }
    }

    @Test func invalidateIsSeenByEveryNode() async throws {
        try await TestCluster.with(3) { nodes in
            let session = try await nodes[0].create(attributes: ["k": AttributeValue(string: "v")])
            #expect(try await nodes[2].load(session.id) != nil)
            try await nodes[1].invalidate(session.id)
            for node in nodes {
                #expect(try await node.load(session.id) == nil)
            }
            await #expect(throws: SessionClusterError.self) {
                try await nodes[2].update(session.id, changes: SessionChanges(updated: ["k": AttributeValue(string: "back")]))
            }
        }
    }

    @Test func rotatedSessionKeepsItsAttributesUnderTheNewIDOnly() async throws {
        try await TestCluster.with(2) { nodes in
            let session = try await nodes[0].create(attributes: ["role": AttributeValue(string: "admin")])
            let newID = try await nodes[1].rotateID(session.id)
            #expect(newID != session.id)
            for node in nodes {
                #expect(try await node.load(session.id) == nil)
                #expect(try await node.load(newID)?["role"]?.string == "admin")
            }
        }
    }

    @Test func garbageOnThePeerPortIsRefusedCountedAndTheNodeKeepsServing() async throws {
        try await TestCluster.with(1) { nodes in
            let node = nodes[0]
            let address = try #require(node.boundAddress)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: address.host, port: address.port).get()
            try await channel.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
            try await channel.closeFuture.get()
            #expect(node.rejectedFrameCount == 1)
            let session = try await node.create()
            #expect(try await node.load(session.id) != nil)
        }
    }

    @Test func strangersOnThePeerPortAreCappedAndTimedOutAndTheNodeKeepsServing() async throws {
        try await TestCluster.with(1, configure: {
            $0.maxInboundPeerConnections = 3
            $0.peerHandshakeTimeout = .milliseconds(400)
            $0.peerIdleTimeout = .milliseconds(1_200)
        }) { nodes in
            let node = nodes[0]
            let address = try #require(node.boundAddress)
            let clock = ContinuousClock()
            let opened = clock.now
            var silent = [any Channel]()
            for _ in 0..<5 {
                silent.append(
                    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                        .connect(host: address.host, port: address.port).get())
            }
            // Two over the cap are closed at the accept; the three admitted ones when their
            // first frame does not come within the handshake timeout.
            try await Task.sleep(for: .milliseconds(200))
            #expect(silent.filter(\.isActive).count == 3)
            for channel in silent { try await channel.closeFuture.get() }
            #expect(clock.now - opened < .seconds(3))

            // A peer that authenticates is not held to the handshake timeout, only to idleness.
            let codec = FrameCodec(configuration: try WireConfiguration(clusterKey: SessionClusterConfiguration.developmentClusterKey))
            let challenge = ChallengeReader()
            let peer = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(challenge) } }
                .connect(host: address.host, port: address.port).get()
            let connector = TestConnector(answering: try await challenge.nonce.get(), from: "stranger", clusterCodec: codec)
            try await peer.writeAndFlush(ByteBuffer(bytes: connector.hello + connector.frame(.error(ProtocolErrorMessage(code: 0, message: "hello")))))
            let sent = clock.now
            try await Task.sleep(for: .milliseconds(700))
            #expect(peer.isActive, "closed at the handshake timeout despite an authenticated frame")
            try await peer.closeFuture.get()
            #expect(clock.now - sent >= .milliseconds(1_100))
            #expect(node.rejectedFrameCount == 0)
            let session = try await node.create()
            #expect(try await node.load(session.id) != nil)
        }
    }

    @Test func acknowledgedWritesSurviveAGracefulLeave() async throws {
        try await TestCluster.with(3) { nodes in
            var ids: [SessionID] = []
            for index in 0..<20 {
                ids.append(try await nodes[0].create(attributes: ["n": AttributeValue(string: "\(index)")]).id)
            }
            await nodes[0].shutdown()
            try await TestCluster.waitUntil("the others see a view without the leaver") {
                (try? await nodes[1].status())?.members.count == 2
            }
            for (index, id) in ids.enumerated() {
                #expect(try await nodes[1].load(id)?["n"]?.string == "\(index)")
                #expect(try await nodes[2].load(id)?["n"]?.string == "\(index)")
            }
        }
    }

    @Test func callsAfterShutdownFailWithNotRunning() async throws {
        let nodes = try await TestCluster.start(1)
        let node = nodes[0]
        let session = try await node.create()
        await node.shutdown()
        await #expect(throws: SessionClusterError.notRunning) { try await node.load(session.id) }
        await #expect(throws: SessionClusterError.notRunning) { try await node.create() }
    }
}

extension ClusterSocketTests {
    /// A write that changes nothing is acknowledged at once, through the owner or not.
    @Test func writingTheSameValueAgainIsAcknowledged() async throws {
        try await TestCluster.with(2) { nodes in
            let session = try await nodes[0].create(attributes: ["k": AttributeValue(string: "v")])
            let same = SessionChanges(updated: ["k": AttributeValue(string: "v")])
            for node in nodes {
                let started = ContinuousClock.now
                try await node.update(session.id, changes: same)
                #expect(ContinuousClock.now - started < .seconds(1))
            }
        }
    }

    /// A read through a node that does not own the session leaves the owner's last-access
    /// time alone unless it asks to touch: an absolute expiry does not slide under
    /// non-sticky routing.
    @Test func aForwardedReadTouchesTheOwnerOnlyWhenAsked() async throws {
        try await TestCluster.with(2) { nodes in
            let session = try await nodes[0].create(attributes: ["k": AttributeValue(string: "v")])
            try await TestCluster.waitUntil("a node serves the session locally") {
                nodes.contains { $0.routing.canServeLocally(session.id) }
            }
            let owner = try #require(nodes.first { $0.routing.canServeLocally(session.id) })
            let other = try #require(nodes.first { $0 !== owner })
            func lastAccess() throws -> Timestamp {
                try #require(owner.store.load(session.id, now: WallClock.now(), touch: false)).lastAccessedAt
            }
            let before = try lastAccess()
            // Past the store's touch granularity (1 s), so that a touch would show.
            try await Task.sleep(for: .milliseconds(1_100))
            #expect(try await other.load(session.id, touch: false)?["k"]?.string == "v")
            #expect(try lastAccess() == before)
            _ = try await other.load(session.id, touch: true)
            #expect(try lastAccess() > before)
        }
    }

    @Test func linksReconnectAfterTheirConnectionsDrop() async throws {
        try await TestCluster.with(2) { nodes in
            let session = try await nodes[0].create(attributes: ["step": AttributeValue(string: "0")])
            for step in 1...3 {
                for node in nodes { await node.dropConnections() }
                try await nodes[step % 2].update(
                    session.id, changes: SessionChanges(updated: ["step": AttributeValue(string: "\(step)")]))
                for node in nodes {
                    #expect(try await node.load(session.id)?["step"]?.string == "\(step)")
                }
            }
        }
    }
}

/// Reads the acceptor's challenge on a raw client connection.
final class ChallengeReader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var received = ByteBuffer()
    private var promise: EventLoopPromise<[UInt8]>?
    let nonce: EventLoopFuture<[UInt8]>

    init() {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: [UInt8].self)
        self.promise = promise
        self.nonce = promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        guard received.readableBytes >= LinkHandshake.challengeBytes, let promise else { return }
        self.promise = nil
        let nonce = received.withUnsafeReadableBytes { try? LinkHandshake.readChallenge($0) } ?? nil
        if let nonce { promise.succeed(nonce) } else { promise.fail(WireError.handshakeFailed("no challenge")) }
    }
}

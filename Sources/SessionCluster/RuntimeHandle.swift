import NIOCore

/// A Sendable way to reach the ``NodeRuntime`` from any thread: every call runs on the
/// node's event loop, directly when already there, otherwise enqueued on it.
struct RuntimeHandle: Sendable {
    private let bound: NIOLoopBound<NodeRuntime>

    init(_ runtime: NodeRuntime) {
        self.bound = NIOLoopBound(runtime, eventLoop: runtime.loop)
    }

    var eventLoop: any EventLoop { bound.eventLoop }

    /// Runs `body` on the node's event loop.
    func run(_ body: @escaping @Sendable (NodeRuntime) -> Void) {
        if bound.eventLoop.inEventLoop {
            body(bound.value)
        } else {
            let bound = self.bound
            bound.eventLoop.execute { body(bound.value) }
        }
    }

    /// Runs `body` on the node's event loop and returns its result.
    func submit<Value: Sendable>(_ body: @escaping @Sendable (NodeRuntime) throws -> Value) async throws -> Value {
        let bound = self.bound
        return try await bound.eventLoop.submit { try body(bound.value) }.get()
    }
}

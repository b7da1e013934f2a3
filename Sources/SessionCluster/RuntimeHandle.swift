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

    /// Hands a received frame to the runtime: directly when on the node's loop (the usual
    /// case), without the closure per frame that ``run(_:)`` would allocate.
    func receive(_ frame: ReceivedFrame) {
        if bound.eventLoop.inEventLoop {
            bound.value.receive(frame)
        } else {
            let bound = self.bound
            bound.eventLoop.execute { bound.value.receive(frame) }
        }
    }

    /// Runs `body` on the node's event loop and returns its result.
    func submit<Value: Sendable>(_ body: @escaping @Sendable (NodeRuntime) throws -> Value) async throws -> Value {
        let bound = self.bound
        return try await bound.eventLoop.submit { try body(bound.value) }.get()
    }
}

import Logging
import NIOCore
import Synchronization

/// Why the node closed an accepted peer connection on its own.
enum InboundLinkRefusal: String, Sendable {
    /// More accepted peer connections were open than ``SessionClusterConfiguration/maxInboundPeerConnections``.
    case overLimit = "over_limit"
    /// No authenticated frame within ``SessionClusterConfiguration/peerHandshakeTimeout`` of the accept.
    case handshakeTimeout = "handshake_timeout"
    /// No frame for ``SessionClusterConfiguration/peerIdleTimeout``.
    case idleTimeout = "idle_timeout"
}

/// The accepted peer connections open at once, against a cap: a stranger opening
/// connections by the thousand is refused at the accept instead of holding a decoder
/// buffer (up to a frame, 16 MiB) in each.
final class InboundConnectionLimit: Sendable {
    let maximum: Int
    private let open = Atomic<Int>(0)

    init(maximum: Int) { self.maximum = maximum }

    /// Admits one more connection, or refuses it at the cap.
    func admit() -> Bool {
        guard open.add(1, ordering: .relaxed).newValue <= maximum else {
            open.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// An admitted connection closed.
    func release() { open.subtract(1, ordering: .relaxed) }

    /// Admitted connections open now.
    var count: Int { open.load(ordering: .relaxed) }
}

/// Sits after the frame decoder of an accepted peer connection and closes it when the first
/// authenticated frame does not come within the handshake timeout, or no frame comes for
/// the idle timeout. A frame counts only once it decoded, MAC checked: a stranger trickling
/// bytes, or holding a half-sent frame, keeps nothing open. A peer whose idle link was
/// closed reconnects when it next has something to send.
final class InboundLinkDeadlines: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ReceivedFrame
    typealias InboundOut = ReceivedFrame

    private let handshakeTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private let onClose: @Sendable (InboundLinkRefusal) -> Void
    private var acceptedAt: NIODeadline = .now()
    private var lastFrameAt: NIODeadline?
    private var timer: Scheduled<Void>?

    init(handshakeTimeout: Duration, idleTimeout: Duration, onClose: @escaping @Sendable (InboundLinkRefusal) -> Void) {
        self.handshakeTimeout = TimeAmount(handshakeTimeout)
        self.idleTimeout = TimeAmount(idleTimeout)
        self.onClose = onClose
    }

    func handlerAdded(context: ChannelHandlerContext) {
        acceptedAt = .now()
        schedule(context: context, at: acceptedAt + handshakeTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastFrameAt = .now()
        context.fireChannelRead(data)
    }

    private var deadline: NIODeadline {
        if let lastFrameAt { return lastFrameAt + idleTimeout }
        return acceptedAt + handshakeTimeout
    }

    private func schedule(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.check(context: context)
        }
    }

    private func check(context: ChannelHandlerContext) {
        timer = nil
        guard context.channel.isActive else { return }
        let due = deadline
        guard due <= .now() else { return schedule(context: context, at: due) }
        onClose(lastFrameAt == nil ? .handshakeTimeout : .idleTimeout)
        context.close(promise: nil)
    }
}

import Logging
import NIOCore
import Synchronization

/// Why the node closed an accepted peer connection on its own.
enum InboundLinkRefusal: String, Sendable {
    /// More accepted peer connections awaited their handshake than
    /// ``SessionClusterConfiguration/maxInboundPeerConnections``: the oldest was closed.
    case overLimit = "over_limit"
    /// No authenticated frame within ``SessionClusterConfiguration/peerHandshakeTimeout`` of the accept.
    case handshakeTimeout = "handshake_timeout"
    /// No frame for ``SessionClusterConfiguration/peerIdleTimeout``.
    case idleTimeout = "idle_timeout"
}

/// Accepted peer connections that have not completed their handshake yet, at most
/// ``maximum`` at once. At the cap a new connection pushes out the oldest waiting one
/// rather than being refused: a stranger that reopens connections as fast as they are
/// closed cannot keep a member out, since a member's hello follows its connect within a
/// round trip, long before `maximum` newer connections push it out. A connection leaves
/// the set once its hello checked out (a member's link, not counted) or when it closes.
final class PendingHandshakes: Sendable {
    let maximum: Int
    private let waiting = Mutex<[(id: ObjectIdentifier, channel: any Channel)]>([])

    init(maximum: Int) { self.maximum = max(1, maximum) }

    /// Counts `channel` as waiting for its handshake; returns the connection it pushed out,
    /// which the caller closes, when the cap was reached.
    func admit(_ channel: any Channel) -> (any Channel)? {
        waiting.withLock { waiting in
            waiting.append((ObjectIdentifier(channel), channel))
            return waiting.count > maximum ? waiting.removeFirst().channel : nil
        }
    }

    /// `channel` completed its handshake or closed.
    func remove(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        waiting.withLock { waiting in waiting.removeAll { $0.id == id } }
    }

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

import NIOHTTPTypes
import Metrics
import NIOCore

/// Closes an HTTP/1 connection whose request does not arrive whole, head to end of body,
/// within `timeout` of its head.
///
/// `--http-idle-timeout` alone does not bound a request: Hummingbird counts a connection
/// active on every body part it reads, so a client that sends a `Content-Length: 65536`
/// body one byte a second (slow POST) holds its connection, and the route its partial
/// body, for hours. A head sent byte by byte is already bounded by the idle timeout (no
/// part is read until the head is whole).
final class RequestReadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let timeout: TimeAmount
    private let closed: Counter
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, closed: Counter) {
        self.timeout = timeout
        self.closed = closed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            timer?.cancel()
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: timeout) {
                let (handler, context) = bound.value
                handler.timer = nil
                handler.closed.increment()
                context.close(promise: nil)
            }
        case .end:
            timer?.cancel()
            timer = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }
}

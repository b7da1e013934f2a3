import Foundation
import Hummingbird
import Metrics
import NIOCore

/// A limit on `POST /session` per client (``ClientRateLimiter``: a token bucket per client
/// address, a bounded table of clients). Over it, the route answers 429 with `Retry-After`
/// and a JSON ``SessionAPIError`` (`rate_limited`), counted in
/// `session_cluster_http_rate_limited_total{node}`.
///
/// The client is the TCP peer's address, which the request context gives when it conforms
/// to `RemoteAddressRequestContext` (``ClientAddressRequestContext`` does); requests whose
/// context gives none share one bucket. With `trustForwardedFor`, the first address of
/// `X-Forwarded-For` is the client instead, when the header is there: only behind a proxy
/// that sets that header itself (nginx: `proxy_set_header X-Forwarded-For $remote_addr;`),
/// since a client can write any address into it and `$proxy_add_x_forwarded_for` keeps what
/// the client wrote as the first address.
public struct SessionCreationLimit: Sendable {
    /// The buckets.
    public let limiter: ClientRateLimiter
    /// Whether the first address of `X-Forwarded-For` names the client.
    public let trustForwardedFor: Bool
    let refusals: Counter

    /// Creates a limit.
    ///
    /// - Parameters:
    ///   - limiter: The buckets, e.g. `ClientRateLimiter(ratePerSecond: 10)` for 10 creations a
    ///     second per client with bursts of 10.
    ///   - trustForwardedFor: Take the client from `X-Forwarded-For` (first address) when present.
    ///   - nodeID: The `node` dimension of the metric.
    public init(limiter: ClientRateLimiter, trustForwardedFor: Bool = false, nodeID: String) {
        self.limiter = limiter
        self.trustForwardedFor = trustForwardedFor
        self.refusals = Counter(label: "session_cluster_http_rate_limited_total", dimensions: [("node", nodeID)])
    }

    /// The `X-Forwarded-For` header.
    static let forwardedFor = HTTPFields.Element.Name("X-Forwarded-For")!

    /// Who sent `request`: the first `X-Forwarded-For` address when trusted and present,
    /// else the TCP peer's IP address, else `"-"`.
    func client(of request: Request, context: some RequestContext) -> String {
        if trustForwardedFor, let header = request.headers[Self.forwardedFor] {
            let first = header.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = String(first).trimmingCharacters(in: CharacterSet.whitespaces)
            if !trimmed.isEmpty { return trimmed }
        }
        if let context = context as? any RemoteAddressRequestContext, let address = context.remoteAddress {
            return address.ipAddress ?? "\(address)"
        }
        return "-"
    }

    /// Takes a token for `request`'s client; throws the 429 when there is none.
    func check(_ request: Request, context: some RequestContext) throws(SessionAPIError) {
        guard case .limited(let retryAfter) = limiter.admit(client(of: request, context: context)) else { return }
        refusals.increment()
        throw SessionAPIError(
            status: .tooManyRequests, code: "rate_limited",
            message: "too many sessions created from this client; retry after \(retryAfter) s",
            retryAfterSeconds: retryAfter)
    }
}

/// A request context that knows the TCP peer's address, so that
/// ``SessionCreationLimit`` can tell clients apart: `Router(context: ClientAddressRequestContext.self)`.
public struct ClientAddressRequestContext: RequestContext, RemoteAddressRequestContext {
    /// Hummingbird's per-request storage (logger, parameters...).
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer (nil in the router test framework, which has no socket).
    public let remoteAddress: SocketAddress?

    /// The context of one request, from the channel it arrived on.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

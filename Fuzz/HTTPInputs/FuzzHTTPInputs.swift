// libFuzzer target: what a client controls in a request to the Hummingbird integration,
// through the same calls the integration makes, without a server:
//
// - the `Cookie` header: Hummingbird's `Cookies` finds the session cookie
//   (`request.cookies[name]?.value` in `ClusterSessionMiddleware.handle` and
//   `SessionClusterRoutes.sessionID`), then `SessionID(_:)` parses its value;
// - the request target: Hummingbird's `URI` gives the path, and the router's trie resolves
//   it against the routes `SessionClusterRoutes` registers, giving the `:name` parameter.
//
// The input is the header's value, a newline, then the request target. A session id that
// parses must be 24 characters of the URL-safe alphabet and print back as the same text; a
// `:name` must be one non-empty path component.
import FuzzSupport
@_spi(Internal) import Hummingbird
import HummingbirdCore
import SessionCore

/// The session routes' paths (`SessionClusterRoutes.registerSessionRoutes` and
/// `registerAdminRoutes`), in the order they are registered.
private let routes: RouterTrie<String> = {
    let builder = RouterPathTrieBuilder<String>()
    for path in [
        "/cluster", "/session", "/session/rotate", "/session/attributes/:name", "/session/principal",
        "/session/principal/sessions", "/health",
    ] {
        builder.addEntry(RouterPath(path), value: path)
    }
    return builder.build()
}()

private let cookieName = "SESSION_ID"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPInputs(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = start.map { UnsafeBufferPointer(start: $0, count: count) } ?? UnsafeBufferPointer(start: nil, count: 0)
    let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
    // HTTP headers and targets reach Hummingbird as Strings: invalid UTF-8 is repaired.
    let header = String(decoding: bytes[..<newline], as: UTF8.self)
    let target = newline < bytes.endIndex ? String(decoding: bytes[(newline + 1)...], as: UTF8.self) : "/"

    checkSessionCookie(header)
    checkRoute(target)
    return 0
}

private func checkSessionCookie(_ header: String) {
    // The header as the client sent it, and split into several headers at the first space.
    for headers in [[header], header.split(separator: " ", maxSplits: 1).map(String.init)] {
        guard let value = Cookies(from: headers)[cookieName]?.value else { continue }
        do {
            let id = try SessionID(value)
            precondition(value.utf8.count == SessionID.textLength, "session id from \(value.utf8.count) bytes")
            precondition(id.text == value, "\(value) parses to the id \(id.text)")
            precondition(SessionID(bytes: id.bytes) == id, "\(value): the binary form does not read back")
        } catch {
            switch error {
            case .wrongLength(let length):
                precondition(length != SessionID.textLength && length == value.utf8.count, "wrongLength(\(length)) for \(value)")
            case .invalidCharacter(let position):
                precondition(position >= 0 && position < SessionID.textLength, "invalidCharacter at \(position)")
            }
        }
    }
}

private func checkRoute(_ target: String) {
    let path = URI(target).path
    guard let (route, parameters) = routes.resolve(path) else { return }
    guard route.hasSuffix(":name") else { return }
    guard let name = parameters.get("name") else { preconditionFailure("\(path) matched \(route) without a name") }
    precondition(!name.isEmpty && !name.contains("/"), "\(path) gave the name \(name)")
}

@_cdecl("FuzzHTTPInputs_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, testOneInput: fuzzHTTPInputs)
}

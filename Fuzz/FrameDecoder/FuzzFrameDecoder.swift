// libFuzzer target: any bytes, as a peer or an attacker without the cluster key sends them,
// into the frame decoder. Nearly every input stops before the HMAC, so this covers what an
// unauthenticated sender reaches: the header checks, the limits, stream framing with
// `frameLength(peeking:)` and the authentication itself. The seeds (Fixtures/frames) carry
// valid tags, so their unmutated prefixes and concatenations also go all the way through.
//
// Every input must come back as messages or a `WireError`; anything else (a trap, an
// out-of-bounds read under ASan, a leak, a hang) is a finding.
import ClusterProtocol
import FuzzSupport
import WireFormat

/// The golden frames' key (Fixtures/frames/README.md), so that the seeds authenticate.
private let codec = FrameCodec(configuration: try! WireConfiguration(clusterKey: Array("golden-test-cluster-key-0123456789".utf8)))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: start, count: start == nil ? 0 : count)

    // A datagram: the whole input is one frame.
    _ = try? codec.decode(input)

    // A TCP link: the input is a byte stream, framed by `frameLength(peeking:)` and
    // decoded over the link's history, until the first error closes the link.
    let history = LinkHistory()
    var offset = 0
    while offset < input.count {
        let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
        // Every prefix of the header must answer the same way or ask for more bytes.
        var length: Int?
        do {
            for available in 0...min(rest.count, FrameCodec.maximumHeaderBytes) {
                length = try codec.frameLength(peeking: UnsafeRawBufferPointer(rebasing: rest[..<available]))
                if length != nil { break }
            }
        } catch {
            return 0
        }
        guard let length else { return 0 }
        // Magic, version, type, flags, a one-byte length and the 16-byte tag.
        precondition(length >= 22, "a frame of \(length) bytes cannot hold a header and a tag")
        guard length <= rest.count else {
            // Not all there yet: what a link would wait for; the decoder must say truncated.
            do {
                _ = try codec.decode(rest, over: history)
                preconditionFailure("a frame of \(length) bytes decoded from \(rest.count)")
            } catch {
                precondition(error == .truncated, "a cut frame decoded as \(error), not truncated")
            }
            return 0
        }
        do {
            let messages = try codec.decode(UnsafeRawBufferPointer(rebasing: rest[..<length]), over: history)
            precondition(!messages.isEmpty, "a frame decoded to no message")
        } catch {
            return 0
        }
        offset += length
    }
    return 0
}

@_cdecl("FuzzFrameDecoder_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, testOneInput: fuzzFrameDecoder)
}

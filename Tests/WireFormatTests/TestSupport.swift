import ClusterProtocol
@testable import WireFormat

extension FrameCodec {
    /// The uncompressed body of `message`, as `encode` writes it.
    func body(of message: ClusterMessage) -> [UInt8] {
        var writer = BinaryWriter(reservingCapacity: 256)
        message.writeBody(to: &writer)
        return writer.finish()
    }

    /// A sealed frame of type `type` around `body`, compressed when `compress` and LZ4 shrinks it.
    func frame(type: UInt8, body: [UInt8], compress: Bool) -> [UInt8] {
        seal(type: type, body: body, mayCompress: compress).bytes
    }

    /// `unsealed` with a valid HMAC appended: the parser, not the MAC, then judges it.
    func resealed(_ unsealed: some Sequence<UInt8>) -> [UInt8] {
        var frame = Array(unsealed)
        appendAuthenticationCode(to: &frame)
        return frame
    }

    /// `frame` without its HMAC.
    func unsealed(_ frame: [UInt8]) -> [UInt8] { Array(frame.dropLast(FrameHeader.macLength)) }

    /// The header and the uncompressed body of a valid frame.
    func unpack(_ frame: [UInt8]) throws -> (header: FrameHeader, body: [UInt8]) {
        try frame.withUnsafeBytes { buffer in
            let header = try #require(try FrameHeader.parse(buffer, configuration: configuration))
            let body = UnsafeRawBufferPointer(rebasing: buffer[header.headerLength..<(header.totalLength - FrameHeader.macLength)])
            guard header.compressed else { return (header, Array(body)) }
            // A linked frame here is the first of its link: its history is empty.
            let decompressed =
                header.linked
                ? try LinkHistory().decompress(body, expectedCount: header.uncompressedLength)
                : try LZ4.decompress(body, expectedCount: header.uncompressedLength)
            return (header, decompressed)
        }
    }

    /// `header` followed by `carried` and a valid HMAC.
    func resealed(header: FrameHeader, carrying carried: some Sequence<UInt8>) -> [UInt8] {
        resealed(header.bytes + Array(carried))
    }

    /// Decodes and returns the error, or nil when `frame` decoded.
    func decodingError(_ frame: [UInt8]) -> WireError? {
        do {
            _ = try decode(frame)
            return nil
        } catch {
            return error
        }
    }
}

import Testing

extension Tag {
    @Tag static var fuzzing: Self
}

extension FrameHeader {
    /// The header as it goes on the wire.
    var bytes: [UInt8] {
        var bytes: [UInt8] = []
        append(to: &bytes)
        return bytes
    }
}

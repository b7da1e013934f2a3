import CLZ4

/// The compression context of one TCP link, one per direction: the last bodies that went
/// over it. Small frames (a one-delta batch, an ack) hardly compress alone, but they repeat
/// what the link carried just before (node ids, attribute names, similar values), so each
/// body is LZ4-compressed with the link's recent bytes as dictionary.
///
/// The sender and the receiver of a link each keep one and feed it the same bodies in the
/// same order (TCP delivers in order; a bad frame closes the link), so both hold the same
/// dictionary. A new connection starts both afresh: make a new history per connection.
/// Datagrams have none: each is compressed on its own.
///
/// Not thread-safe: it belongs to the one event loop that serves the link.
public final class LinkHistory {
    /// How many of the latest body bytes serve as dictionary. 8 KiB holds dozens of small
    /// frames; loading it into the compressor costs a few microseconds per frame.
    public static let defaultWindowBytes = 8 * 1024

    /// The dictionary size; sender and receiver of a link must agree on it.
    public let windowBytes: Int
    private var bytes: [UInt8] = []
    private var stream: UnsafeMutablePointer<LZ4_stream_t>?

    /// Creates an empty history: the start of a connection.
    public init(windowBytes: Int = LinkHistory.defaultWindowBytes) {
        precondition(windowBytes > 0 && windowBytes <= 64 * 1024, "LZ4 looks back at most 64 KiB")
        self.windowBytes = windowBytes
        bytes.reserveCapacity(2 * windowBytes)
    }

    deinit {
        if let stream { LZ4_freeStream(stream) }
    }

    /// Adds a body that went over the link (after it was encoded or decoded).
    func record(_ body: UnsafeRawBufferPointer) {
        if body.count >= windowBytes {
            bytes = Array(body[(body.count - windowBytes)...])
            return
        }
        bytes.append(contentsOf: body)
        // Trim rarely: the dictionary is only ever the last `windowBytes`.
        if bytes.count > 2 * windowBytes { bytes.removeFirst(bytes.count - windowBytes) }
    }

    /// Compresses `source` into `destination` (at least `LZ4.compressBound` bytes) against
    /// the history; the compressed size, or nil when LZ4 refuses the input.
    func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        guard source.count > 0, source.count <= Int(LZ4_MAX_INPUT_SIZE), let input = source.baseAddress,
              let output = destination.baseAddress
        else { return nil }
        if stream == nil { stream = LZ4_createStream() }
        guard let stream else { return nil }
        let written = withWindow { window in
            LZ4_loadDict(stream, window.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(window.count))
            return LZ4_compress_fast_continue(
                stream, input.assumingMemoryBound(to: CChar.self), output.assumingMemoryBound(to: CChar.self),
                Int32(source.count), Int32(clamping: destination.count), 1)
        }
        return written > 0 ? Int(written) : nil
    }

    /// Decompresses `source`, compressed against this history, into exactly `expectedCount`
    /// bytes, or fails.
    func decompress(_ source: UnsafeRawBufferPointer, expectedCount: Int) throws(WireError) -> [UInt8] {
        guard let input = source.baseAddress, source.count <= Int(Int32.max), expectedCount <= Int(Int32.max),
              LZ4.canExpand(source.count, to: expectedCount)
        else { throw .decompressionFailed }
        var produced: Int32 = -1
        let output = [UInt8](unsafeUninitializedCapacity: max(expectedCount, 1)) { buffer, initialized in
            produced = withWindow { window in
                LZ4_decompress_safe_usingDict(
                    input.assumingMemoryBound(to: CChar.self),
                    UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                    Int32(source.count), Int32(expectedCount),
                    window.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(window.count))
            }
            initialized = produced == Int32(expectedCount) ? expectedCount : 0
        }
        guard produced == Int32(expectedCount) else { throw .decompressionFailed }
        return output
    }

    private func withWindow<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        bytes.withUnsafeBytes { all in
            body(UnsafeRawBufferPointer(rebasing: all[max(0, all.count - windowBytes)...]))
        }
    }
}

import CLZ4
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
package final class LinkHistory {
    /// How many of the latest body bytes serve as dictionary. 8 KiB holds dozens of small
    /// frames.
    package static let defaultWindowBytes = 8 * 1024
    /// Bodies up to this size are compressed in place after the history, where the LZ4
    /// stream already knows the dictionary; a larger one (a snapshot) reloads it.
    static let streamedBodyBytes = 64 * 1024
    /// A sender's buffer holds this many windows, so that sliding the window to the front
    /// (and reloading the dictionary) happens once per several dozen small frames.
    private static let senderWindows = 8

    /// The dictionary size; sender and receiver of a link must agree on it.
    package let windowBytes: Int
    /// Frames encoded over this history so far: the number of the next one, which a link
    /// codec's MAC covers (see `FrameCodec.numbersLinkFrames`).
    var framesSent: UInt64 = 0
    /// Frames decoded over this history so far.
    var framesReceived: UInt64 = 0
    /// The history, oldest first, in one buffer that does not move while the LZ4 stream
    /// points into it; only the last `windowBytes` of `count` are ever the dictionary.
    private var storage: UnsafeMutableRawBufferPointer
    private var count = 0
    private var stream: UnsafeMutablePointer<LZ4_stream_t>?
    /// True while `stream`'s dictionary is exactly the window, ending at `count`: the next
    /// body copied there compresses without reloading it (`LZ4_loadDict` hashes the whole
    /// window, which cost more than compressing a small body).
    private var streamInSync = false
    /// Bytes of the last compressed body, already in `storage` after `count`, that
    /// ``record(_:)`` will find there.
    private var staged = 0

    /// Creates an empty history: the start of a connection.
    package init(windowBytes: Int = LinkHistory.defaultWindowBytes) {
        precondition(windowBytes > 0 && windowBytes <= 64 * 1024, "LZ4 looks back at most 64 KiB")
        self.windowBytes = windowBytes
        storage = .allocate(byteCount: 2 * windowBytes, alignment: 16)
    }

    deinit {
        if let stream { LZ4_freeStream(stream) }
        storage.deallocate()
    }

    /// Adds a body that went over the link (after it was encoded or decoded).
    func record(_ body: UnsafeRawBufferPointer) {
        defer { staged = 0 }
        if staged > 0, staged == body.count, let source = body.baseAddress,
            memcmp(storage.baseAddress! + count, source, staged) == 0
        {
            // Compressed just now, in place: the stream already holds it.
            count += staged
            trimDictionary()
            return
        }
        streamInSync = false
        guard body.count < windowBytes else {
            count = 0
            append(UnsafeRawBufferPointer(rebasing: body[(body.count - windowBytes)...]))
            return
        }
        append(body)
    }

    /// Compresses `source` into `destination` (at least `LZ4.compressBound` bytes) against
    /// the history; the compressed size, or nil when LZ4 refuses the input. The caller
    /// records the same body next.
    func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        guard source.count > 0, source.count <= Int(LZ4_MAX_INPUT_SIZE), let input = source.baseAddress,
              let output = destination.baseAddress
        else { return nil }
        if stream == nil { stream = LZ4_createStream() }
        guard let stream else { return nil }
        if staged > 0 {
            // The last compressed body was never recorded: the stream holds bytes the
            // history does not.
            streamInSync = false
            staged = 0
        }
        guard source.count <= Self.streamedBodyBytes else {
            // Rare and large: compress from where it is, against a freshly loaded window.
            streamInSync = false
            let window = self.window
            LZ4_loadDict(stream, window.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(window.count))
            let written = LZ4_compress_fast_continue(
                stream, input.assumingMemoryBound(to: CChar.self), output.assumingMemoryBound(to: CChar.self),
                Int32(source.count), Int32(clamping: destination.count), 1)
            return written > 0 ? Int(written) : nil
        }
        makeRoom(for: source.count, capacity: Self.senderWindows * windowBytes)
        if !streamInSync {
            let window = self.window
            // LZ4 ignores a dictionary under 8 bytes (it loads nothing); the stream is then
            // not the window, and trimming it in place would move the wrong bytes.
            let loaded = LZ4_loadDict(stream, window.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(window.count))
            streamInSync = Int(loaded) == window.count && window.count > 0
        }
        // Right after the dictionary, LZ4 compresses in prefix mode and keeps the stream's
        // tables: the next body needs no reload.
        let slot = storage.baseAddress! + count
        slot.copyMemory(from: input, byteCount: source.count)
        staged = source.count
        let written = LZ4_compress_fast_continue(
            stream, slot.assumingMemoryBound(to: CChar.self), output.assumingMemoryBound(to: CChar.self),
            Int32(source.count), Int32(clamping: destination.count), 1)
        guard written > 0 else {
            // A failed block leaves the stream in no state we can name: reload next time.
            staged = 0
            streamInSync = false
            return nil
        }
        return Int(written)
    }

    /// Decompresses `source`, compressed against this history, into exactly `expectedCount`
    /// bytes, or fails.
    func decompress(_ source: UnsafeRawBufferPointer, expectedCount: Int) throws(WireError) -> [UInt8] {
        guard let input = source.baseAddress, source.count <= Int(Int32.max), expectedCount <= Int(Int32.max),
              LZ4.canExpand(source.count, to: expectedCount)
        else { throw .decompressionFailed }
        var produced: Int32 = -1
        let window = self.window
        let output = [UInt8](unsafeUninitializedCapacity: max(expectedCount, 1)) { buffer, initialized in
            produced = LZ4_decompress_safe_usingDict(
                input.assumingMemoryBound(to: CChar.self),
                UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                Int32(source.count), Int32(expectedCount),
                window.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(window.count))
            initialized = produced == Int32(expectedCount) ? expectedCount : 0
        }
        guard produced == Int32(expectedCount) else { throw .decompressionFailed }
        return output
    }

    /// The dictionary: the last `windowBytes` of the history.
    private var window: UnsafeRawBufferPointer {
        let start = max(0, count - windowBytes)
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(storage)[start..<count])
    }

    private func append(_ bytes: UnsafeRawBufferPointer) {
        makeRoom(for: bytes.count)
        if let source = bytes.baseAddress { (storage.baseAddress! + count).copyMemory(from: source, byteCount: bytes.count) }
        count += bytes.count
    }

    /// Ensures `byteCount` more bytes fit after the history: slides the window to the front
    /// (rarely: the buffer holds many small bodies), or grows the buffer.
    private func makeRoom(for byteCount: Int, capacity: Int = 0) {
        guard count + byteCount > storage.count || storage.count < capacity else { return }
        streamInSync = false
        let keep = min(count, windowBytes)
        if keep + byteCount <= storage.count && storage.count >= capacity {
            memmove(storage.baseAddress!, storage.baseAddress! + (count - keep), keep)
        } else {
            let larger = UnsafeMutableRawBufferPointer.allocate(
                byteCount: max(capacity, keep + max(byteCount, windowBytes)), alignment: 16)
            larger.baseAddress!.copyMemory(from: storage.baseAddress! + (count - keep), byteCount: keep)
            storage.deallocate()
            storage = larger
        }
        count = keep
    }

    /// Keeps the stream's dictionary to the window, where it is (no copy, no rehash): LZ4
    /// then ignores matches further back, which the receiver's window does not hold.
    private func trimDictionary() {
        guard streamInSync, let stream else { return }
        let keep = min(count, windowBytes)
        LZ4_saveDict(stream, (storage.baseAddress! + (count - keep)).assumingMemoryBound(to: CChar.self), Int32(keep))
    }
}

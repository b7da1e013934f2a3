import CLZ4

/// The LZ4 block API, with the checks the frame format relies on.
enum LZ4 {
    /// LZ4 cannot expand one input byte into more than 255 output bytes; a claim beyond
    /// this ratio (plus slack for tiny inputs) cannot be honest and is refused unallocated.
    static let maximumExpansion = 255
    private static let expansionSlack = 64

    /// Compresses `source` into `destination` (at least ``compressBound(_:)`` bytes);
    /// returns the compressed size, or nil when the input is over LZ4's limit.
    static func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        guard source.count > 0, source.count <= Int(LZ4_MAX_INPUT_SIZE), let input = source.baseAddress,
              let output = destination.baseAddress
        else { return nil }
        let written = LZ4_compress_default(
            input.assumingMemoryBound(to: CChar.self), output.assumingMemoryBound(to: CChar.self),
            Int32(source.count), Int32(clamping: destination.count))
        return written > 0 ? Int(written) : nil
    }

    /// The destination size that guarantees ``compress(_:into:)`` succeeds.
    static func compressBound(_ count: Int) -> Int {
        Int(LZ4_compressBound(Int32(clamping: count)))
    }

    /// Whether `compressedCount` bytes could possibly hold `claimedCount` bytes.
    static func canExpand(_ compressedCount: Int, to claimedCount: Int) -> Bool {
        claimedCount <= compressedCount * maximumExpansion + expansionSlack
    }

    /// Decompresses `source` into exactly `expectedCount` bytes, or fails.
    static func decompress(_ source: UnsafeRawBufferPointer, expectedCount: Int) throws(WireError) -> [UInt8] {
        guard let input = source.baseAddress, source.count <= Int(Int32.max), expectedCount <= Int(Int32.max),
              canExpand(source.count, to: expectedCount)
        else { throw .decompressionFailed }
        var produced: Int32 = -1
        let output = [UInt8](unsafeUninitializedCapacity: max(expectedCount, 1)) { buffer, initialized in
            produced = LZ4_decompress_safe(
                input.assumingMemoryBound(to: CChar.self), UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                Int32(source.count), Int32(expectedCount))
            initialized = produced == Int32(expectedCount) ? expectedCount : 0
        }
        guard produced == Int32(expectedCount) else { throw .decompressionFailed }
        return output
    }
}

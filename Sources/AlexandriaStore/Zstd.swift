import CZstd

/// A reusable zstd compression context. One per thread; not thread-safe.
final class ZstdCompressor {
    private let context: OpaquePointer
    let level: Int32

    init(level: Int32 = 1) {
        context = ZSTD_createCCtx()
        self.level = level
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `source` into `destination`; returns the compressed size, or nil if it would not fit
    /// (meaning it does not save anything worth keeping).
    func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        let n = ZSTD_compressCCtx(
            context, destination.baseAddress, destination.count, source.baseAddress, source.count, level)
        if ZSTD_isError(n) != 0 { return nil }
        return n
    }
}

/// A reusable zstd decompression context. One per thread; not thread-safe.
final class ZstdDecompressor {
    private let context: OpaquePointer

    init() { context = ZSTD_createDCtx() }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `source` into exactly `destination.count` bytes; false on any error or a size mismatch.
    func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        // The frame must declare its content size and it must be what the index says, before anything is written.
        let declared = ZSTD_getFrameContentSize(source.baseAddress, source.count)
        guard declared == UInt64(destination.count) else { return false }
        let n = ZSTD_decompressDCtx(
            context, destination.baseAddress, destination.count, source.baseAddress, source.count)
        return ZSTD_isError(n) == 0 && n == destination.count
    }
}

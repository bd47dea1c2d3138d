import CSHA256x2

/// Incremental SHA-256 over the project's SHA-NI kernel, which can advance two independent streams at once.
///
/// On this CPU class `sha256rnds2` is latency-bound, so interleaving two messages on one core runs at about 1.8 times
/// the single-stream rate. Ingest pairs the whole-file hash with the chunk hashes over the same bytes; reads pair
/// two chunks. Falls back to portable C where SHA-NI is missing. The digests are plain SHA-256 (FIPS 180-4).
public struct SHA256Stream: Sendable {
    private var context = alx_sha256_ctx()

    public init() { alx_sha256_init(&context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        alx_sha256_update(&context, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// The digest; the stream must not be used afterwards.
    public mutating func finalize() -> ContentHash {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { alx_sha256_final(&context, $0.baseAddress) }
        return ContentHash(bytes: out)!
    }

    /// Advances `a` by `bytesA` and `b` by `bytesB` together (the lengths may differ).
    public static func update(
        _ a: inout SHA256Stream, _ bytesA: UnsafeRawBufferPointer, _ b: inout SHA256Stream,
        _ bytesB: UnsafeRawBufferPointer
    ) {
        let empty: UInt8 = 0
        withUnsafePointer(to: empty) { fallback in
            let pa = bytesA.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? fallback
            let pb = bytesB.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? fallback
            alx_sha256_update_x2(&a.context, pa, bytesA.count, &b.context, pb, bytesB.count)
        }
    }

    /// The digests of two buffers, hashed together.
    public static func hashPair(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> (ContentHash, ContentHash)
    {
        var a = SHA256Stream()
        var b = SHA256Stream()
        update(&a, x, &b, y)
        return (a.finalize(), b.finalize())
    }

    /// The digest of one buffer.
    public static func hash(_ x: UnsafeRawBufferPointer) -> ContentHash {
        var a = SHA256Stream()
        a.update(x)
        return a.finalize()
    }

    /// Whether the SHA-NI path is in use.
    public static var hardwareAccelerated: Bool { alx_sha256_ni_available() != 0 }
}

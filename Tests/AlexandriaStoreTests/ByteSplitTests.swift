import Testing

@testable import AlexandriaStore

/// The vectorised byte split and interleave of byte-grouped chunks against the definition, byte by byte, at every
/// length around the vector loop's edges; and the entropy estimate that decides whether a stream is worth zstd.
@Suite("Byte split of 16-bit floats")
struct ByteSplitTests {
    @Test func splitAndInterleaveMatchTheDefinition() {
        for n in Array(0...131) + [4095, 4096, 4097, 100_003] {
            let raw = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 8 &+ 7) }
            var even = [UInt8](repeating: 0xAA, count: (n + 1) / 2)
            var odd = [UInt8](repeating: 0xAA, count: n / 2)
            raw.withUnsafeBytes { r in
                even.withUnsafeMutableBytes { e in odd.withUnsafeMutableBytes { ChunkCoder.split(r, even: e, odd: $0) }
                }
            }
            #expect(even == stride(from: 0, to: n, by: 2).map { raw[$0] }, "even, \(n) bytes")
            #expect(odd == stride(from: 1, to: n, by: 2).map { raw[$0] }, "odd, \(n) bytes")
            var back = [UInt8](repeating: 0x55, count: n)
            even.withUnsafeBytes { e in
                odd.withUnsafeBytes { o in
                    back.withUnsafeMutableBytes { ChunkCoder.interleave(even: e, odd: o, into: $0) }
                }
            }
            #expect(back == raw, "interleave, \(n) bytes")
        }
    }

    @Test func entropyOfKnownHistograms() {
        func h(_ bytes: [UInt8]) -> Double { bytes.withUnsafeBytes { ChunkCoder.entropyBitsPerByte($0) } }
        #expect(h([]) == 0)
        #expect(abs(h([UInt8](repeating: 7, count: 1000))) < 1e-9)
        #expect(abs(h((0..<4096).map { UInt8(truncatingIfNeeded: $0) }) - 8) < 1e-9)
        #expect(abs(h((0..<4096).map { UInt8($0 % 2) }) - 1) < 1e-9)
        // bf16 weights: the mantissa stream is near 8 bits (skipped), the exponent stream far below 7.2 (compressed).
        let weights = TestData.bf16(1 << 20, seed: 8)
        var even = [UInt8](repeating: 0, count: 1 << 19)
        var odd = [UInt8](repeating: 0, count: 1 << 19)
        weights.withUnsafeBytes { r in
            even.withUnsafeMutableBytes { e in odd.withUnsafeMutableBytes { ChunkCoder.split(r, even: e, odd: $0) } }
        }
        #expect(h(even) >= ChunkCoder.incompressibleBitsPerByte)
        #expect(h(odd) < ChunkCoder.incompressibleBitsPerByte)
    }
}

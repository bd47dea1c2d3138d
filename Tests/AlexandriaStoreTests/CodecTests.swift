import AlexandriaCore
import Testing

@testable import AlexandriaStore

@Suite("Chunk codecs and pack records")
struct CodecTests {
    @Test(arguments: [0, 1, 63, 64, 65, 4097, 262_144, 1_048_575])
    func everyCodecRoundTrips(length: Int) {
        let coder = ChunkCoder(maxChunk: 1 << 20)
        for data in [
            TestData.random(length, seed: 1), TestData.bf16(length, seed: 2), [UInt8](repeating: 9, count: length),
        ] {
            let (codec, payload) = data.withUnsafeBytes { coder.encode($0) }
            let stored = codec == .raw ? data : Array(payload)
            var out = [UInt8](repeating: 0, count: length)
            let ok = stored.withUnsafeBytes { p in out.withUnsafeMutableBytes { coder.decode(codec, p, into: $0) } }
            #expect(ok && out == data, "codec \(codec) length \(length)")
        }
    }

    @Test func weightsUseByteGroupingAndNoiseStaysRaw() {
        let coder = ChunkCoder(maxChunk: 1 << 20)
        let weights = TestData.bf16(256 << 10, seed: 3)
        let (codec, payload) = weights.withUnsafeBytes { coder.encode($0) }
        #expect(codec == .byteGrouped)
        #expect(Double(payload.count) < 0.78 * Double(weights.count))
        let noise = TestData.random(256 << 10, seed: 4)
        #expect(noise.withUnsafeBytes { coder.encode($0) }.0 == .raw)
        let text = Array(String(repeating: "{\"tokenizer\": [1, 2, 3]}\n", count: 4000).utf8)
        #expect(text.withUnsafeBytes { coder.encode($0) }.0 != .raw)
    }

    @Test func malformedPayloadsAreRejectedNotTrusted() {
        let coder = ChunkCoder(maxChunk: 1 << 20)
        let weights = TestData.bf16(100_000, seed: 5)
        let (codec, payload) = weights.withUnsafeBytes { coder.encode($0) }
        let good = Array(payload)
        var out = [UInt8](repeating: 0, count: weights.count)
        func decode(_ codec: ChunkCodec, _ bytes: [UInt8], length: Int = 100_000) -> Bool {
            var out = [UInt8](repeating: 0, count: length)
            return bytes.withUnsafeBytes { p in out.withUnsafeMutableBytes { coder.decode(codec, p, into: $0) } }
        }
        #expect(good.withUnsafeBytes { p in out.withUnsafeMutableBytes { coder.decode(codec, p, into: $0) } })
        #expect(!decode(codec, Array(good.prefix(good.count / 2))))
        #expect(!decode(codec, [0xff] + good.dropFirst()))
        #expect(!decode(codec, good, length: 99_999))
        #expect(!decode(.zstd, TestData.random(1000, seed: 6)))
        #expect(!decode(.raw, [1, 2, 3]))
        #expect(!decode(.byteGrouped, [0, 0xff, 0xff, 0xff, 0xff]))
    }

    @Test func recordHeadersRoundTripAndRejectNonsense() {
        let header = PackRecordHeader(
            kind: .chunk, codec: .zstd, rawLength: 1000, storedLength: 600, sequence: 0, id: ContentHash.of([1]))
        var bytes = [UInt8](repeating: 0, count: PackRecordHeader.size)
        bytes.withUnsafeMutableBytes { header.write(to: $0.baseAddress!) }
        #expect(bytes.withUnsafeBytes { PackRecordHeader(parsing: $0) } == header)
        for (offset, value) in [(0, 0x00), (4, 9), (5, 7), (6, 1), (8, 0xff)] as [(Int, UInt8)] {
            var bad = bytes
            bad[offset] = value
            #expect(bad.withUnsafeBytes { PackRecordHeader(parsing: $0) } == nil, "byte \(offset)")
        }
        #expect(Array(bytes.prefix(10)).withUnsafeBytes { PackRecordHeader(parsing: $0) } == nil)
    }
}

import AlexandriaCore
import AlexandriaWire
import NIOCore
import NIOEmbedded
import Testing

/// The frame decoder reads CHUNK frames (0x21) through `WireMessage.decodeChunk(from:payloadLength:)`, which skips one
/// copy of the chunk bytes; it must accept and refuse exactly what `WireMessage.decode(type:payload:)` does.
@Suite("CHUNK frame fast path")
struct ChunkFrameDecodeTests {
    static func header(rid: UInt32 = 9, index: UInt16 = 3, codec: UInt8 = 0, raw: UInt32 = 5) -> [UInt8] {
        var b = ByteBuffer()
        b.writeInteger(rid)
        b.writeInteger(index)
        b.writeBytes(ContentHash.of([7]).bytes)
        b.writeInteger(codec)
        b.writeInteger(raw)
        return Array(b.readableBytesView)
    }

    /// Decodes `payload` as a CHUNK both ways; returns the fast path's result, after checking the two agree.
    static func bothWays(_ payload: [UInt8]) throws -> WireMessage? {
        let slow = try? WireMessage.decode(type: 0x21, payload: payload)
        var buffer = ByteBuffer(bytes: payload + [0xEE])  // a following frame's byte must stay unread
        let fast = try? WireMessage.decodeChunk(from: &buffer, payloadLength: payload.count)
        #expect(fast == slow)
        if fast != nil {
            #expect(buffer.readableBytes == 1 && buffer.getInteger(at: buffer.readerIndex) == UInt8(0xEE))
        }
        return fast
    }

    @Test func goodChunksDecodeTheSameBothWays() throws {
        let body: [UInt8] = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        for codec in [UInt8(0), 1, 2] {
            let m = try Self.bothWays(Self.header(codec: codec, raw: 4096) + body)
            #expect(
                m
                    == .chunk(
                        requestID: 9, index: 3, id: ContentHash.of([7]), codec: codec, rawLength: 4096, payload: body))
        }
        // An empty stored form is the codec's business, not the frame's: both ways accept it.
        #expect(try Self.bothWays(Self.header()) != nil)
    }

    @Test func badChunksAreRefusedBothWays() throws {
        let bad: [[UInt8]] = [
            [], [0, 1, 0, 0], Array(Self.header().prefix(42)),  // cut short inside the header
            Self.header(raw: 0) + [1],  // zero raw length
            Self.header(raw: UInt32(Limits.maxChunkBytes) + 1) + [1],  // raw length above the limit
            Self.header(codec: 3) + [1],  // unknown codec
        ]
        for payload in bad { #expect(try Self.bothWays(payload) == nil, "\(payload.count) bytes") }
    }

    @Test func frameDecoderRefusesABadChunkFrame() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        let payload = Self.header(codec: 3) + [1, 2, 3]
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1 + payload.count))
        buffer.writeInteger(UInt8(0x21))
        buffer.writeBytes(payload)
        #expect(throws: WireError.self) { try channel.writeInbound(buffer) }
    }
}

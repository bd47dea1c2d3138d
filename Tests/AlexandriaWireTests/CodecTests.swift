import AlexandriaCore
import AlexandriaWire
import Foundation
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

/// One example of every message, used for round trips and for the byte-by-byte decoder check.
let everyMessage: [WireMessage] = {
    let a = ContentHash.of([1])
    let b = ContentHash.of([2])
    return [
        .hello(
            minVersion: 1, maxVersion: 1, nodeKey: [UInt8](repeating: 3, count: 32),
            nonce: [UInt8](repeating: 4, count: 32), listenPort: 7420),
        .auth(signature: [UInt8](repeating: 5, count: 64)),
        .ping(0x0102_0304_0506_0708), .pong(42),
        .haveQuery([a, b]),
        .have([
            (a, .none), (b, .complete),
            (ContentHash.of([3]), .partial(chunkCount: 10, bits: [0b1010_0000, 0b0100_0000])),
        ]),
        .getRecipe(address: a, start: 0, maxCount: 16_384),
        .recipe(
            address: a, size: 300, averageBits: 18, total: 2, start: 0, entries: [(a, UInt32(100)), (b, UInt32(200))]),
        .getChunks(requestID: 7, ids: [a, b]),
        .chunk(requestID: 7, index: 1, id: b, codec: 0, rawLength: 3, payload: [9, 8, 7]),
        .chunkMissing(requestID: 7, index: 0, id: a),
        .getManifestByID(a), .getManifestByRelease("acme/tiny@1.0"),
        .manifest(
            envelope: Array("{}".utf8), publisherKey: [1, 2, 3], entries: [Array("{\"a\":1}".utf8)],
            checkpoint: "o\n1\nAA==\n"),
        .error(.overloaded, "slow down"),
    ]
}()

func frame(_ m: WireMessage) -> ByteBuffer {
    var buffer = ByteBuffer()
    try! FrameEncoder().encode(data: m, out: &buffer)
    return buffer
}

@Suite("Wire v1 codec")
struct CodecTests {
    @Test func everyMessageRoundTrips() throws {
        for m in everyMessage {
            let back = try WireMessage.decode(type: m.type, payload: m.encodedPayload)
            #expect(back == m, "\(m.type)")
        }
    }

    @Test func decoderHandlesByteByByteAndBulkInput() throws {
        let pairs = everyMessage.map { (frame($0), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    @Test func oversizedFrameIsRefusedBeforeBuffering() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(WireLimits.maxFrameBytes + 1))
        buffer.writeInteger(UInt8(0x21))
        #expect(throws: WireError(.frameTooLarge, "")) { try channel.writeInbound(buffer) }
    }

    static let malformed: [([UInt8], UInt8)] = [
        ([], 0x03),  // ping without its token
        ([0, 0, 0, 0, 0, 0, 0, 1, 9], 0x03),  // ping with a trailing byte
        ([0, 1, 0, 0], 0x21),  // chunk cut short
        ([0xff, 0xff], 0x10),  // have-query claiming 65535 addresses
        ([0, 0, 0, 1, 0, 65], 0x20),  // 65 chunks in one request
        ([0, 99, 0, 0], 0x7F),  // unknown error code
        ([1], 0x55),  // unknown message type
    ]

    @Test func malformedMessagesAreRefused() {
        for (payload, type) in Self.malformed {
            #expect(throws: WireError.self, "type \(type)") { try WireMessage.decode(type: type, payload: payload) }
        }
    }

    @Test func emptyFrameIsAProtocolViolation() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(0))
        #expect(throws: WireError(.protocolViolation, "")) { try channel.writeInbound(buffer) }
    }

    @Test func availabilityBitfieldsReadMSBFirst() {
        let a = Availability.partial(chunkCount: 10, bits: [0b1000_0001, 0b0100_0000])
        #expect(a.has(chunk: 0) && !a.has(chunk: 1) && a.has(chunk: 7) && a.has(chunk: 9) && !a.has(chunk: 8))
        #expect(!a.has(chunk: 10))
    }
}

/// Protocol/test-vectors/wire-v1.json pins every message's exact frame bytes, so a change to the encoding cannot
/// slip through unnoticed. `ALEXANDRIA_WRITE_WIRE_VECTORS=1 swift test --filter WireVectors` rewrites it after a
/// deliberate change (and the spec must change with it).
@Suite("Wire v1 vectors")
struct WireVectorTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Protocol/test-vectors/wire-v1.json")

    static func hex(_ b: ByteBuffer) -> String { Hex.encode(b.readableBytesView) }

    @Test func framesMatchTheVectors() throws {
        let frames = everyMessage.map { ["type": String(format: "0x%02x", $0.type), "frame": Self.hex(frame($0))] }
        if ProcessInfo.processInfo.environment["ALEXANDRIA_WRITE_WIRE_VECTORS"] == "1" {
            let data = try JSONSerialization.data(
                withJSONObject: ["version": 1, "frames": frames], options: [.prettyPrinted, .sortedKeys])
            try data.write(to: Self.path)
        }
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.path)) as! [String: Any]
        let vectors = stored["frames"] as! [[String: String]]
        #expect(vectors.count == frames.count)
        for (vector, message) in zip(vectors, everyMessage) {
            #expect(vector["frame"] == Self.hex(frame(message)), "message type \(vector["type"] ?? "")")
            // And each stored frame decodes back to the message.
            let bytes = Hex.decode(vector["frame"]!)!
            let decoded = try WireMessage.decode(type: bytes[4], payload: Array(bytes[5...]))
            #expect(decoded == message)
        }
    }
}

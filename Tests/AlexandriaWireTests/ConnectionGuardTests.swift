import AlexandriaCore
import AlexandriaWire
import NIOCore
import NIOEmbedded
import Testing

/// wire-v1's connection rules as a value with an injected clock, and its NIO shell on an embedded channel.
@Suite struct ConnectionGuardTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let ids = (0..<64).map { ContentHash.of([UInt8($0)]) }

    @Test func onlyACompleteFrameResetsTheIdleClock() {
        var watch = ConnectionWatch(idleTimeout: .seconds(60), now: start)
        #expect(!watch.isIdle(at: start + .seconds(59)))
        #expect(watch.isIdle(at: start + .seconds(60)))
        #expect(watch.received(.ping(1), at: start + .seconds(50)) == nil)
        #expect(!watch.isIdle(at: start + .seconds(109)))
        #expect(watch.idleDeadline == start + .seconds(110))
    }

    @Test func moreOutstandingChunkIdsThanTheLimitIsOverloaded() {
        var watch = ConnectionWatch(idleTimeout: .seconds(60), now: start)
        for r in 0..<4 { #expect(watch.received(.getChunks(requestID: UInt32(r), ids: ids), at: start) == nil) }
        #expect(watch.outstandingChunks == 256)
        // Answers sent free slots: an honest requester that keeps within 256 never crosses the limit here.
        watch.sent(.chunkMissing(requestID: 0, index: 0, id: ids[0]))
        watch.sent(.pong(1))
        #expect(watch.outstandingChunks == 255)
        #expect(watch.received(.getChunks(requestID: 9, ids: [ids[0]]), at: start) == nil)
        let error = watch.received(.getChunks(requestID: 10, ids: [ids[1]]), at: start)
        #expect(error?.code == .overloaded)
    }

    /// Frames a test peer sends: what the channel then writes back, decoded.
    func written(_ channel: EmbeddedChannel) throws -> [WireMessage] {
        var out: [WireMessage] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            while let length = buffer.readInteger(as: UInt32.self), let type = buffer.readInteger(as: UInt8.self) {
                out.append(try WireMessage.decode(type: type, payload: buffer.readBytes(length: Int(length) - 1)!))
            }
        }
        return out
    }

    func channel(idle: TimeAmount = .seconds(60)) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()),
            ConnectionGuard(idleTimeout: idle))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test(arguments: [
        ([0, 0, 0, 0] as [UInt8], WireErrorCode.protocolViolation),
        ([0, 0x20, 0x10, 0x01, 0x03], .frameTooLarge),
        ([0, 0, 0, 1, 0x6E], .unknownMessage),
        ([0, 0, 0, 3, 0x03, 0, 0], .protocolViolation),
    ])
    func aFrameTheDecoderRefusesIsAnsweredWithItsErrorCodeThenClosed(bytes: [UInt8], code: WireErrorCode) throws {
        let channel = try channel()
        #expect(throws: WireError.self) { try channel.writeInbound(ByteBuffer(bytes: bytes)) }
        let sent = try written(channel)
        guard sent.count == 1, case .error(let sentCode, _) = sent[0] else {
            Issue.record("expected one ERROR frame, got \(sent.map(\.type))")
            return
        }
        #expect(sentCode == code)
        channel.embeddedEventLoop.advanceTime(by: ConnectionGuard.errorGrace)
        #expect(!channel.isActive)
        _ = try? channel.finish()
    }

    @Test func pastTheOutstandingLimitTheGuardSendsOverloadedAndNothingElse() throws {
        let channel = try channel()
        for r in 0..<4 {
            var b = ByteBuffer()
            try FrameEncoder().encode(data: .getChunks(requestID: UInt32(r), ids: ids), out: &b)
            try channel.writeInbound(b)
        }
        var b = ByteBuffer()
        try FrameEncoder().encode(data: .getChunks(requestID: 9, ids: [ids[0]]), out: &b)
        try channel.writeInbound(b)
        // The four within the limit reached the application, the fifth did not.
        var delivered = 0
        while try channel.readInbound(as: WireMessage.self) != nil { delivered += 1 }
        #expect(delivered == 4)
        guard case .error(let code, _)? = try written(channel).last else {
            Issue.record("no ERROR frame")
            return
        }
        #expect(code == .overloaded)
        // Nothing leaves after the ERROR.
        channel.write(WireMessage.chunkMissing(requestID: 0, index: 0, id: ids[0]), promise: nil)
        channel.flush()
        #expect(try written(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: ConnectionGuard.errorGrace)
        #expect(!channel.isActive)
    }

    @Test func aConnectionWithoutACompleteFrameForTheIdleTimeoutIsClosed() throws {
        let channel = try channel(idle: .seconds(60))
        // A frame begun and never finished does not count.
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 9, 0x03, 0]))
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
    }

    @Test func aCompleteFrameKeepsTheConnectionOpen() throws {
        let channel = try channel(idle: .seconds(60))
        var b = ByteBuffer()
        try FrameEncoder().encode(data: .ping(7), out: &b)
        channel.embeddedEventLoop.advanceTime(by: .seconds(40))
        try channel.writeInbound(b)
        channel.embeddedEventLoop.advanceTime(by: .seconds(40))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(21))
        #expect(!channel.isActive)
    }
}

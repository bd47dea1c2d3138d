import NIOCore

/// Splits a byte stream into frames: `length u32 BE | type u8 | payload`, where length counts type and payload.
///
/// The declared length is checked against `WireLimits.maxFrameBytes` before a single payload byte is buffered, so an
/// oversized or lying frame costs the peer its connection, not our memory. Decoding the payload into a message is
/// `WireMessage.decode`; a decode error also ends the connection.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = WireMessage

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length >= 1 else { throw WireError(.protocolViolation, "an empty frame") }
        guard length <= WireLimits.maxFrameBytes else {
            throw WireError(.frameTooLarge, "a frame of \(length) bytes; the limit is \(WireLimits.maxFrameBytes)")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let type: UInt8 = buffer.readInteger()!
        if type == 0x21 {  // CHUNK, the bulk of a fetch: one copy of the chunk bytes instead of two
            let message = try WireMessage.decodeChunk(from: &buffer, payloadLength: Int(length) - 1)
            context.fireChannelRead(wrapInboundOut(message))
            return .continue
        }
        let payload = buffer.readBytes(length: Int(length) - 1)!
        context.fireChannelRead(wrapInboundOut(try WireMessage.decode(type: type, payload: payload)))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws
        -> DecodingState
    {
        try decode(context: context, buffer: &buffer)
    }
}

/// Writes a message as one frame.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = WireMessage

    public init() {}

    public func encode(data: WireMessage, out: inout ByteBuffer) throws {
        if case .chunk(let requestID, let index, let id, let codec, let rawLength, let chunk) = data,
            chunk.count + 44 <= WireLimits.maxFrameBytes
        {
            // The hot path of serving: the same bytes as `encodedPayload`, written straight into one buffer of the
            // exact size, without building the payload array first (one copy and one large allocation fewer).
            out.reserveCapacity(4 + 1 + 43 + chunk.count)
            out.writeInteger(UInt32(1 + 43 + chunk.count))
            out.writeInteger(data.type)
            out.writeInteger(requestID)
            out.writeInteger(index)
            id.bytes.withUnsafeBytes { _ = out.writeBytes($0) }
            out.writeInteger(codec)
            out.writeInteger(rawLength)
            out.writeBytes(chunk)
            return
        }
        let payload = data.encodedPayload
        guard payload.count + 1 <= WireLimits.maxFrameBytes else {
            // Never crash on our own oversized message: refuse it, which closes this connection only.
            throw WireError(.internal, "a message of \(payload.count) bytes does not fit one frame")
        }
        out.writeInteger(UInt32(payload.count + 1))
        out.writeInteger(data.type)
        out.writeBytes(payload)
    }
}

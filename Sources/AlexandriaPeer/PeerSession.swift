import AlexandriaCore
import AlexandriaWire
import NIOCore
import NIOPosix

/// An authenticated connection: the peer's key, and the message streams.
public struct PeerSession {
    public let peerKey: [UInt8]
    public let peerListenPort: UInt16
    var inbound: NIOAsyncChannelInboundStream<WireMessage>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<WireMessage>

    public var peerID: String { NodeIdentity.describe(peerKey) }

    public mutating func next() async throws -> WireMessage? { try await inbound.next() }

    public func send(_ message: WireMessage) async throws { try await outbound.write(message) }

    /// The handlers of every wire v1 connection, either direction: framing, then the connection rules (idle timeout,
    /// outstanding chunk ids, ERROR before closing on a fatal error), then the async streams.
    package static func pipeline(
        _ channel: Channel, idleTimeout: TimeAmount = .seconds(WireLimits.idleTimeoutSeconds)
    ) -> EventLoopFuture<NIOAsyncChannel<WireMessage, WireMessage>> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(
                ByteToMessageHandler(FrameDecoder(), maximumBufferSize: WireLimits.maxFrameBytes * 2),
                MessageToByteHandler(FrameEncoder()),
                ConnectionGuard(idleTimeout: idleTimeout))
            return try NIOAsyncChannel<WireMessage, WireMessage>(
                wrappingChannelSynchronously: channel,
                configuration: .init(backPressureStrategy: .init(lowWatermark: 4, highWatermark: 32)))
        }
    }

    /// Runs the handshake on a fresh connection and then `body` with the session. Throws if the peer does not prove
    /// its key within the handshake timeout.
    package static func handshake<T>(
        identity: NodeIdentity, initiator: Bool, listenPort: UInt16,
        inbound: NIOAsyncChannelInboundStream<WireMessage>, outbound: NIOAsyncChannelOutboundWriter<WireMessage>,
        body: (inout PeerSession) async throws -> T
    ) async throws -> T {
        var iterator = inbound.makeAsyncIterator()
        let mine = Handshake.hello(identity: identity, listenPort: listenPort)
        try await outbound.write(mine)
        let first = try await iterator.next()
        guard case .hello(let minV, let maxV, let peerKey, let nonce, let port)? = first else {
            if first != nil { try? await outbound.write(.error(.protocolViolation, "the first frame must be HELLO")) }
            throw WireError(.protocolViolation, "the peer did not start with HELLO")
        }
        guard minV <= Handshake.version, maxV >= Handshake.version else {
            try? await outbound.write(.error(.unsupportedVersion, "this node speaks wire v\(Handshake.version)"))
            throw WireError(.unsupportedVersion, "the peer speaks wire v\(minV)...\(maxV)")
        }
        guard peerKey != identity.publicKey else { throw WireError(.protocolViolation, "connected to itself") }
        // The decoder refuses trailing bytes and the encoding is deterministic, so re-encoding gives the exact payload.
        let theirs = WireMessage.hello(
            minVersion: minV, maxVersion: maxV, nodeKey: peerKey, nonce: nonce, listenPort: port)
        let initiatorHello = initiator ? mine.encodedPayload : theirs.encodedPayload
        let responderHello = initiator ? theirs.encodedPayload : mine.encodedPayload
        try await outbound.write(
            try Handshake.sign(
                identity: identity, initiator: initiator, initiatorHello: initiatorHello,
                responderHello: responderHello))
        guard case .auth(let signature)? = try await iterator.next(),
            Handshake.verify(
                signature: signature, peerKey: peerKey, peerIsInitiator: !initiator,
                initiatorHello: initiatorHello, responderHello: responderHello)
        else {
            try? await outbound.write(.error(.unauthenticated, "the handshake signature does not verify"))
            throw WireError(.unauthenticated, "the peer failed to prove its node key")
        }
        var session = PeerSession(peerKey: peerKey, peerListenPort: port, inbound: iterator, outbound: outbound)
        return try await body(&session)
    }
}

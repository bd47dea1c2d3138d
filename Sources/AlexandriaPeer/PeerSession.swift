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
    /// its key. The decisions are `HandshakeMachine`'s; this only carries its actions to the channel. Its timer is
    /// the caller's: a close scheduled on the channel with the same timeout ends the inbound stream, which the
    /// machine sees as `closed()`.
    package static func handshake<T>(
        identity: NodeIdentity, initiator: Bool, listenPort: UInt16,
        inbound: NIOAsyncChannelInboundStream<WireMessage>, outbound: NIOAsyncChannelOutboundWriter<WireMessage>,
        body: (inout PeerSession) async throws -> T
    ) async throws -> T {
        var iterator = inbound.makeAsyncIterator()
        var machine = HandshakeMachine(
            identity: identity, initiator: initiator, listenPort: listenPort, nonce: Handshake.freshNonce())
        var actions = machine.start(now: 0)
        while true {
            for action in actions {
                switch action {
                case .send(let message):
                    if machine.isFinished {
                        try? await outbound.write(message)
                    } else {
                        try await outbound.write(message)
                    }
                case .armTimer:
                    break
                case .fail(let error):
                    throw error
                case .established(let peerKey, let port):
                    var session = PeerSession(
                        peerKey: peerKey, peerListenPort: port, inbound: iterator, outbound: outbound)
                    return try await body(&session)
                }
            }
            if let message = try await iterator.next() {
                actions = machine.received(message)
            } else {
                actions = machine.closed()
            }
        }
    }
}

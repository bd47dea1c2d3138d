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
    /// its key in time. The decisions are `HandshakeMachine`'s, its timer included; this only carries its actions to
    /// the channel: `armTimer` schedules a close of `channel` at the deadline, which ends the inbound stream, and the
    /// machine then judges by the clock whether its time was up (`timerFired`) or the peer went away (`closed`).
    package static func handshake<T>(
        identity: NodeIdentity, initiator: Bool, listenPort: UInt16, channel: Channel,
        timeoutSeconds: Double = Double(WireLimits.handshakeTimeoutSeconds),
        inbound: NIOAsyncChannelInboundStream<WireMessage>, outbound: NIOAsyncChannelOutboundWriter<WireMessage>,
        body: (inout PeerSession) async throws -> T
    ) async throws -> T {
        /// The machine's clock: seconds on the monotonic clock.
        func now() -> Double { Double(NIODeadline.now().uptimeNanoseconds) / 1e9 }
        var iterator = inbound.makeAsyncIterator()
        var machine = HandshakeMachine(
            identity: identity, initiator: initiator, listenPort: listenPort, nonce: Handshake.freshNonce(),
            timeoutSeconds: timeoutSeconds)
        var timer: Scheduled<Void>?
        defer { timer?.cancel() }
        var actions = machine.start(now: now())
        while true {
            for action in actions {
                switch action {
                case .send(let message):
                    if machine.isFinished {
                        try? await outbound.write(message)
                    } else {
                        try await outbound.write(message)
                    }
                case .armTimer(let deadline):
                    timer?.cancel()
                    let delay = TimeAmount.nanoseconds(Int64(max(0, deadline - now()) * 1e9))
                    timer = channel.eventLoop.scheduleTask(in: delay) { channel.close(promise: nil) }
                case .fail(let error):
                    throw error
                case .established(let peerKey, let port):
                    timer?.cancel()
                    timer = nil
                    var session = PeerSession(
                        peerKey: peerKey, peerListenPort: port, inbound: iterator, outbound: outbound)
                    return try await body(&session)
                }
            }
            let next: WireMessage?
            do {
                next = try await iterator.next()
            } catch {
                let expired = machine.timerFired(now: now())
                guard !expired.isEmpty else { throw error }
                actions = expired
                continue
            }
            if let message = next {
                actions = machine.received(message)
            } else {
                let expired = machine.timerFired(now: now())
                actions = expired.isEmpty ? machine.closed() : expired
            }
        }
    }
}

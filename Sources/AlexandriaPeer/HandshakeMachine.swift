import AlexandriaCore
import AlexandriaWire

/// The wire v1 handshake (Protocol/wire-v1.md, "Handshake") as a state machine with no I/O: it takes events (the
/// connection opened, a frame arrived, the connection closed, the handshake timer fired) and returns actions (send a
/// frame, arm the timer, fail, or hand over an authenticated peer). The nonce and the clock are injected, so a test
/// runs a whole handshake, both sides, without a socket, and the same transcript every time.
///
/// Each side sends HELLO, then AUTH over `"alexandria/wire/v1/auth" || role || initiator HELLO payload || responder
/// HELLO payload` (`Handshake.transcript`), then checks the peer's AUTH with strict Ed25519. A side sends its AUTH as
/// soon as it has both HELLOs, so the frames cross on the wire and the handshake takes one round trip.
public struct HandshakeMachine: Sendable {
    /// What the driver does next, in order.
    public enum Action: Equatable, Sendable {
        /// Write this frame.
        case send(WireMessage)
        /// Fire `timerFired` at this instant (seconds on the injected clock) unless the handshake is done by then.
        case armTimer(deadline: Double)
        /// The peer proved its key: cancel the timer, and the connection is a session from now on.
        case established(peerKey: [UInt8], peerListenPort: UInt16)
        /// Close the connection (any ERROR frame to send comes as a `send` just before).
        case fail(WireError)
    }

    enum State: Sendable {
        case idle
        /// Our HELLO is out; waiting for theirs.
        case sentHello(mine: WireMessage)
        /// Both HELLOs seen and our AUTH sent; waiting for theirs.
        case sentAuth(peerKey: [UInt8], peerListenPort: UInt16, initiatorHello: [UInt8], responderHello: [UInt8])
        case established
        case failed
    }

    let identity: NodeIdentity
    let initiator: Bool
    let listenPort: UInt16
    let nonce: [UInt8]
    let timeoutSeconds: Double
    var state = State.idle
    var deadline = Double.infinity

    /// `nonce` is 32 random bytes (`Handshake.freshNonce()` in production, fixed in tests).
    public init(
        identity: NodeIdentity, initiator: Bool, listenPort: UInt16, nonce: [UInt8],
        timeoutSeconds: Double = Double(WireLimits.handshakeTimeoutSeconds)
    ) {
        precondition(nonce.count == 32, "a HELLO nonce is 32 bytes")
        self.identity = identity
        self.initiator = initiator
        self.listenPort = listenPort
        self.nonce = nonce
        self.timeoutSeconds = timeoutSeconds
    }

    /// Whether the handshake is over, either way.
    public var isFinished: Bool {
        switch state {
        case .established, .failed: return true
        default: return false
        }
    }

    /// The connection is open: send HELLO and arm the handshake timer.
    public mutating func start(now: Double) -> [Action] {
        guard case .idle = state else { return [] }
        let mine = WireMessage.hello(
            minVersion: Handshake.version, maxVersion: Handshake.version, nodeKey: identity.publicKey, nonce: nonce,
            listenPort: listenPort)
        state = .sentHello(mine: mine)
        deadline = now + timeoutSeconds
        return [.send(mine), .armTimer(deadline: deadline)]
    }

    /// A frame arrived.
    public mutating func received(_ message: WireMessage) -> [Action] {
        switch state {
        case .idle:
            return fail(WireError(.protocolViolation, "a frame before the handshake started"))
        case .sentHello(let mine):
            guard case .hello(let minV, let maxV, let peerKey, let peerNonce, let port) = message else {
                return fail(
                    WireError(.protocolViolation, "the peer did not start with HELLO"),
                    telling: .error(.protocolViolation, "the first frame must be HELLO"))
            }
            guard minV <= Handshake.version, maxV >= Handshake.version else {
                return fail(
                    WireError(.unsupportedVersion, "the peer speaks wire v\(minV)...\(maxV)"),
                    telling: .error(.unsupportedVersion, "this node speaks wire v\(Handshake.version)"))
            }
            guard peerKey != identity.publicKey else {
                return fail(WireError(.protocolViolation, "connected to itself"))
            }
            // The decoder refuses trailing bytes and the encoding is deterministic, so re-encoding gives the exact
            // payload the peer signed.
            let theirs = WireMessage.hello(
                minVersion: minV, maxVersion: maxV, nodeKey: peerKey, nonce: peerNonce, listenPort: port)
            let initiatorHello = initiator ? mine.encodedPayload : theirs.encodedPayload
            let responderHello = initiator ? theirs.encodedPayload : mine.encodedPayload
            let auth: WireMessage
            do {
                auth = try Handshake.sign(
                    identity: identity, initiator: initiator, initiatorHello: initiatorHello,
                    responderHello: responderHello)
            } catch {
                return fail(WireError(.internal, "signing the handshake failed: \(error)"))
            }
            state = .sentAuth(
                peerKey: peerKey, peerListenPort: port, initiatorHello: initiatorHello, responderHello: responderHello)
            return [.send(auth)]
        case .sentAuth(let peerKey, let port, let initiatorHello, let responderHello):
            guard case .auth(let signature) = message,
                Handshake.verify(
                    signature: signature, peerKey: peerKey, peerIsInitiator: !initiator,
                    initiatorHello: initiatorHello, responderHello: responderHello)
            else {
                return fail(
                    WireError(.unauthenticated, "the peer failed to prove its node key"),
                    telling: .error(.unauthenticated, "the handshake signature does not verify"))
            }
            state = .established
            return [.established(peerKey: peerKey, peerListenPort: port)]
        case .established, .failed:
            return []
        }
    }

    /// The connection closed (or the stream ended) before the handshake was done.
    public mutating func closed() -> [Action] {
        if isFinished { return [] }
        switch state {
        case .sentHello: return fail(WireError(.protocolViolation, "the peer did not start with HELLO"))
        default: return fail(WireError(.unauthenticated, "the peer failed to prove its node key"))
        }
    }

    /// The timer armed by `start` fired. Early or late firings are judged by `now`, not trusted.
    public mutating func timerFired(now: Double) -> [Action] {
        guard !isFinished, now >= deadline else { return [] }
        return fail(WireError(.unauthenticated, "the peer did not complete the handshake within \(timeoutSeconds) s"))
    }

    private mutating func fail(_ error: WireError, telling peer: WireMessage? = nil) -> [Action] {
        state = .failed
        return (peer.map { [Action.send($0)] } ?? []) + [.fail(error)]
    }
}

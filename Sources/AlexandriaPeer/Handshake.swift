import AlexandriaCore
import AlexandriaWire
import Crypto

/// A node's identity: the Ed25519 key in `<home>/keys/node.key`.
public struct NodeIdentity: Sendable {
    public let key: Curve25519.Signing.PrivateKey
    public init(key: Curve25519.Signing.PrivateKey) { self.key = key }
    public var publicKey: [UInt8] { Array(key.publicKey.rawRepresentation) }
    /// `ed25519:<hex>`, for logs and the peer table.
    public var id: String { NodeIdentity.describe(publicKey) }
    public static func describe(_ key: [UInt8]) -> String {
        "ed25519:" + key.prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}

/// The handshake of wire v1 (Protocol/wire-v1.md, "Handshake").
///
/// Each side signs `"alexandria/wire/v1/auth" || role || initiator HELLO payload || responder HELLO payload`, role 0x00
/// for the initiator and 0x01 for the responder. Both HELLOs carry a fresh 32-byte nonce, so a recorded AUTH is
/// useless against a new nonce, and the role byte stops a signature from being reflected back.
public enum Handshake {
    public static let version: UInt16 = 1
    static let context = Array("alexandria/wire/v1/auth".utf8)

    public static func hello(identity: NodeIdentity, listenPort: UInt16) -> WireMessage {
        .hello(
            minVersion: version, maxVersion: version, nodeKey: identity.publicKey, nonce: freshNonce(),
            listenPort: listenPort)
    }

    /// 32 bytes from the system's random source: a HELLO nonce.
    public static func freshNonce() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    public static func transcript(initiator: Bool, initiatorHello: [UInt8], responderHello: [UInt8]) -> [UInt8] {
        context + [initiator ? 0x00 : 0x01] + initiatorHello + responderHello
    }

    public static func sign(
        identity: NodeIdentity, initiator: Bool, initiatorHello: [UInt8], responderHello: [UInt8]
    )
        throws -> WireMessage
    {
        .auth(
            signature: Array(
                try identity.key.signature(
                    for: transcript(
                        initiator: initiator, initiatorHello: initiatorHello,
                        responderHello: responderHello))))
    }

    /// Checks the peer's AUTH; `peerIsInitiator` says which role the peer had. Strict Ed25519 (`Ed25519Strict`): a
    /// small-order or non-canonical node key, R or S fails, so no one authenticates as a key whose "signature"
    /// verifies for every transcript.
    public static func verify(
        signature: [UInt8], peerKey: [UInt8], peerIsInitiator: Bool, initiatorHello: [UInt8],
        responderHello: [UInt8]
    ) -> Bool {
        Ed25519Strict.isValidSignature(
            signature,
            message: transcript(
                initiator: peerIsInitiator, initiatorHello: initiatorHello, responderHello: responderHello),
            publicKey: peerKey)
    }
}

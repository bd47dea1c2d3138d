/// Which witnesses a node trusts to settle a conflict between two signed manifests for one release
/// (`[trust]` in config.toml; Protocol/gossip-v1.md, "Which binding stands").
///
/// A witness is a node key. Keys cost nothing to make, so a cosignature counts only from a key the operator listed;
/// cosignatures from any other key are kept and shown, labelled untrusted, and never move a binding. The empty
/// policy (the default) trusts no one: each node keeps the binding it saw first.
public struct TrustPolicy: Sendable, Equatable {
    /// Trusted witness keys (32-byte Ed25519 public keys), sorted, distinct.
    public let witnesses: [[UInt8]]
    /// Distinct trusted witnesses a contender needs for the policy to settle a conflict in its favour.
    public let quorum: Int

    /// No trusted witnesses: first-seen.
    public static let firstSeen = TrustPolicy(checked: [], quorum: 0)

    private init(checked witnesses: [[UInt8]], quorum: Int) {
        self.witnesses = witnesses
        self.quorum = quorum
    }

    /// A policy from `ed25519:<64 hex>` keys and a quorum (nil: a majority of the keys, `count / 2 + 1`).
    /// Throws for a malformed, non-canonical or small-order key, a key listed twice, or a quorum outside
    /// `1...witnesses.count` (a quorum with no witnesses included).
    public init(witnesses texts: [String], quorum: Int?) throws(CoreError) {
        var keys: [[UInt8]] = []
        for text in texts {
            guard let key = Ed25519Strict.parse(text) else {
                throw CoreError(
                    .malformedInput,
                    "'\(text)' is not a witness key: write ed25519: and the node key's 64 lowercase hex digits, as "
                        + "`alexandria status` prints it (a key of small order or in a non-canonical encoding is refused)"
                )
            }
            guard !keys.contains(key) else { throw CoreError(.malformedInput, "the witness \(text) is listed twice") }
            keys.append(key)
        }
        let q = quorum ?? (keys.isEmpty ? 0 : keys.count / 2 + 1)
        guard keys.isEmpty ? q == 0 : (1...keys.count).contains(q) else {
            throw CoreError(
                .malformedInput,
                keys.isEmpty
                    ? "a quorum of \(q) needs witnesses to count; list their keys in witnesses"
                    : "quorum must be from 1 to the \(keys.count) witnesses listed, not \(q)")
        }
        self.init(checked: keys.sorted { $0.lexicographicallyPrecedes($1) }, quorum: q)
    }

    /// Whether any witness is trusted (else conflicts are settled by first-seen alone).
    public var isSet: Bool { quorum > 0 }

    public func trusts(_ key: [UInt8]) -> Bool { witnesses.contains(key) }

    /// Whether the quorum is more than half of the listed witnesses: then two contenders can both reach quorum only
    /// if some trusted witness signed both sides (which an honest witness never does).
    public var isMajority: Bool { quorum * 2 > witnesses.count }
}

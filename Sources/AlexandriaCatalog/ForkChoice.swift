import AlexandriaCore

/// Which of several validly signed manifests for one release a node resolves the name to
/// (Protocol/gossip-v1.md, "Which binding stands"). A pure function of what the node knows: no clock, no I/O.
///
/// Timestamps never decide anything (a witness writes whatever time it likes), and neither do cosignatures from keys
/// the policy does not list (anyone makes a key in a millisecond). In order:
/// 1. One contender: it stands.
/// 2. With a policy: a contender *has quorum* when at least `quorum` distinct trusted witnesses cosigned a
///    checkpoint of its log that includes its publish entry. If exactly one has quorum, it stands, even on a node
///    that saw the other first. If several have (trusted witnesses signed both sides), the held binding stays, and
///    the witnesses that signed both sides are reported.
/// 3. Otherwise the node's held binding (the one it saw first and committed to) stands.
/// 4. With neither, the node refuses the name: it lists the contenders, and fetch by manifest id still works.
public enum ForkChoice {
    public struct Contender: Sendable, Equatable {
        public let id: ContentHash
        /// Distinct witness keys that cosigned a checkpoint consistent with this contender's log and including it.
        public let witnesses: [[UInt8]]
        public init(id: ContentHash, witnesses: [[UInt8]]) {
            self.id = id
            self.witnesses = witnesses
        }
    }

    public enum Reason: String, Sendable, Encodable {
        /// No conflict.
        case only
        /// The policy's quorum of trusted witnesses cosigned this contender and no other.
        case quorum
        /// The node's held (first-seen) binding; the policy settled nothing.
        case held
        /// Trusted witnesses reached quorum on more than one contender; the held binding stays.
        case heldDespiteConflictingQuorums
        /// Nothing settles it: no quorum and no held binding. The name is refused.
        case refused
    }

    public struct Decision: Sendable, Equatable {
        /// The manifest the name resolves to; nil when refused.
        public let winner: ContentHash?
        public let reason: Reason
        /// Trusted witnesses that cosigned more than one contender (evidence against them).
        public let doubleSigners: [[UInt8]]
    }

    /// Decides. `held` is the node's held binding (nil if it has none); it must be one of `contenders` to count.
    public static func decide(contenders: [Contender], held: ContentHash?, policy: TrustPolicy) -> Decision {
        let held = held.flatMap { h in contenders.contains { $0.id == h } ? h : nil }
        if contenders.count == 1 { return Decision(winner: contenders[0].id, reason: .only, doubleSigners: []) }
        if contenders.isEmpty {
            return Decision(winner: held, reason: held == nil ? .refused : .held, doubleSigners: [])
        }
        var doubleSigners: [[UInt8]] = []
        if policy.isSet {
            let trusted = contenders.map { c in Set(c.witnesses.filter(policy.trusts)) }
            var seen: Set<[UInt8]> = []
            for set in trusted {
                for key in set {
                    if seen.contains(key) && !doubleSigners.contains(key) { doubleSigners.append(key) }
                    seen.insert(key)
                }
            }
            doubleSigners.sort { $0.lexicographicallyPrecedes($1) }
            let withQuorum = zip(contenders, trusted).filter { $0.1.count >= policy.quorum }.map(\.0)
            if withQuorum.count == 1 {
                return Decision(winner: withQuorum[0].id, reason: .quorum, doubleSigners: doubleSigners)
            }
            if withQuorum.count > 1 {
                return Decision(
                    winner: held, reason: held == nil ? .refused : .heldDespiteConflictingQuorums,
                    doubleSigners: doubleSigners)
            }
        }
        return Decision(winner: held, reason: held == nil ? .refused : .held, doubleSigners: doubleSigners)
    }
}

import AlexandriaCatalog
import AlexandriaCore
import Testing

/// The settlement rule as a pure function: contenders with their witnesses, the held binding and the policy in; the
/// binding that stands out. No I/O, no clock.
@Suite struct ForkChoiceTests {
    /// Distinct canonical encodings; the rule compares keys as bytes and never verifies with them.
    static func key(_ n: UInt8) -> [UInt8] { [n] + Array(repeating: 0x42, count: 31) }
    static let a = ContentHash.of(Array("a".utf8))
    static let b = ContentHash.of(Array("b".utf8))
    static let honest = (1...3).map { key($0) }
    static let sybils = (10...12).map { key($0) }
    static func policy(_ keys: [[UInt8]], quorum: Int) throws -> TrustPolicy {
        try TrustPolicy(witnesses: keys.map(Ed25519Strict.describe), quorum: quorum)
    }

    @Test func oneContenderStands() {
        let d = ForkChoice.decide(
            contenders: [.init(id: Self.a, witnesses: [])], held: nil, policy: .firstSeen)
        #expect(d.winner == Self.a && d.reason == .only)
    }

    @Test func withoutPolicyTheHeldBindingStandsWhateverTheWitnesses() {
        // The fork has three (Sybil) witnesses, the original none: nothing moves the held binding.
        let contenders: [ForkChoice.Contender] = [
            .init(id: Self.a, witnesses: []), .init(id: Self.b, witnesses: Self.sybils),
        ]
        #expect(ForkChoice.decide(contenders: contenders, held: Self.a, policy: .firstSeen).winner == Self.a)
        #expect(ForkChoice.decide(contenders: contenders, held: Self.b, policy: .firstSeen).winner == Self.b)
        let refused = ForkChoice.decide(contenders: contenders, held: nil, policy: .firstSeen)
        #expect(refused.winner == nil && refused.reason == .refused)
    }

    @Test func untrustedWitnessesNeverMoveAHeldBinding() throws {
        let p = try Self.policy(Self.honest, quorum: 2)
        let d = ForkChoice.decide(
            contenders: [.init(id: Self.a, witnesses: [Self.honest[0]]), .init(id: Self.b, witnesses: Self.sybils)],
            held: Self.a, policy: p)
        #expect(d.winner == Self.a && d.reason == .held)
    }

    @Test func aTrustedQuorumSettlesEvenAgainstTheHeldBinding() throws {
        let p = try Self.policy(Self.honest, quorum: 2)
        let contenders: [ForkChoice.Contender] = [
            .init(id: Self.b, witnesses: Self.sybils + [Self.honest[2]]),
            .init(id: Self.a, witnesses: [Self.honest[0], Self.honest[1]]),
        ]
        for held in [Self.a, Self.b, nil] as [ContentHash?] {
            let d = ForkChoice.decide(contenders: contenders, held: held, policy: p)
            #expect(d.winner == Self.a && d.reason == .quorum, "held \(String(describing: held))")
        }
    }

    @Test func quorumOnBothSidesKeepsTheHeldBindingAndNamesTheDoubleSigners() throws {
        let p = try Self.policy(Self.honest, quorum: 2)
        let contenders: [ForkChoice.Contender] = [
            .init(id: Self.a, witnesses: [Self.honest[0], Self.honest[1]]),
            .init(id: Self.b, witnesses: [Self.honest[1], Self.honest[2]]),
        ]
        let d = ForkChoice.decide(contenders: contenders, held: Self.b, policy: p)
        #expect(d.winner == Self.b && d.reason == .heldDespiteConflictingQuorums)
        #expect(d.doubleSigners == [Self.honest[1]])
        #expect(ForkChoice.decide(contenders: contenders, held: nil, policy: p).winner == nil)
    }

    @Test func aHeldBindingMustBeAContender() {
        let d = ForkChoice.decide(
            contenders: [.init(id: Self.a, witnesses: []), .init(id: Self.b, witnesses: [])],
            held: ContentHash.of([1]), policy: .firstSeen)
        #expect(d.winner == nil)
    }

    @Test func policiesAreChecked() throws {
        let keys = Self.honest.map(Ed25519Strict.describe)
        #expect(try TrustPolicy(witnesses: keys, quorum: nil).quorum == 2)
        #expect(try TrustPolicy(witnesses: keys, quorum: 1).isMajority == false)
        #expect(throws: CoreError.self) { try TrustPolicy(witnesses: keys, quorum: 4) }
        #expect(throws: CoreError.self) { try TrustPolicy(witnesses: keys, quorum: 0) }
        #expect(throws: CoreError.self) { try TrustPolicy(witnesses: [], quorum: 1) }
        #expect(throws: CoreError.self) { try TrustPolicy(witnesses: [keys[0], keys[0]], quorum: 1) }
        // Small-order, non-canonical, upper-case and short keys are refused.
        for bad in [
            "ed25519:0100000000000000000000000000000000000000000000000000000000000000",
            "ed25519:edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "ed25519:" + String(repeating: "AB", count: 32), "ed25519:abcd",
            keys[0].replacingOccurrences(of: "ed25519:", with: ""),
        ] {
            #expect(throws: CoreError.self, "\(bad)") { try TrustPolicy(witnesses: [bad], quorum: 1) }
        }
    }
}

import AlexandriaCore
import AlexandriaWire
import Crypto
import Foundation
import Testing

@testable import AlexandriaPeer

/// The handshake as a state machine: both sides in one process, no socket, fixed nonces.
@Suite("The handshake state machine")
struct HandshakeMachineTests {
    static let alice = NodeIdentity(
        key: try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 1, count: 32)))
    static let bob = NodeIdentity(
        key: try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 2, count: 32)))

    static func sent(_ actions: [HandshakeMachine.Action]) -> [WireMessage] {
        actions.compactMap { if case .send(let m) = $0 { m } else { nil } }
    }

    static func failure(_ actions: [HandshakeMachine.Action]) -> WireError? {
        actions.compactMap { if case .fail(let e) = $0 { e } else { nil } }.first
    }

    /// The frames of wire-v1.json, decoded, by message type.
    static func vectors() throws -> [UInt8: WireMessage] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Protocol/test-vectors/wire-v1.json")
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as! [String: Any]
        var out: [UInt8: WireMessage] = [:]
        for vector in stored["frames"] as! [[String: String]] {
            let bytes = Hex.decode(vector["frame"]!)!
            out[bytes[4]] = try WireMessage.decode(type: bytes[4], payload: Array(bytes[5...]))
        }
        return out
    }

    @Test func twoMachinesAuthenticateEachOtherInOneRoundTrip() throws {
        var initiator = HandshakeMachine(
            identity: Self.alice, initiator: true, listenPort: 7420, nonce: [UInt8](repeating: 0xA1, count: 32))
        var responder = HandshakeMachine(
            identity: Self.bob, initiator: false, listenPort: 0, nonce: [UInt8](repeating: 0xB2, count: 32))
        let a0 = initiator.start(now: 100)
        let b0 = responder.start(now: 100)
        #expect(a0.last == .armTimer(deadline: 100 + Double(WireLimits.handshakeTimeoutSeconds)))
        // HELLOs cross; each answers with its AUTH at once.
        let aAuth = Self.sent(initiator.received(Self.sent(b0)[0]))
        let bAuth = Self.sent(responder.received(Self.sent(a0)[0]))
        #expect(aAuth.count == 1 && bAuth.count == 1)
        let aDone = initiator.received(bAuth[0])
        let bDone = responder.received(aAuth[0])
        #expect(aDone == [.established(peerKey: Self.bob.publicKey, peerListenPort: 0)])
        #expect(bDone == [.established(peerKey: Self.alice.publicKey, peerListenPort: 7420)])
        // The same nonces and keys give the same transcript: the AUTH frames are reproducible.
        var again = HandshakeMachine(
            identity: Self.alice, initiator: true, listenPort: 7420, nonce: [UInt8](repeating: 0xA1, count: 32))
        _ = again.start(now: 0)
        let againAuth = Self.sent(again.received(Self.sent(b0)[0]))
        #expect(againAuth == aAuth)
        // After the handshake, the timer means nothing.
        let late = initiator.timerFired(now: 1e9)
        #expect(late.isEmpty)
    }

    @Test func theWireVectorsRunThroughTheMachine() throws {
        let vectors = try Self.vectors()
        let hello = try #require(vectors[0x01])
        let auth = try #require(vectors[0x02])
        guard case .hello(_, _, let vectorKey, _, let vectorPort) = hello else {
            Issue.record("vector 0x01 is not a HELLO")
            return
        }
        // The vector HELLO (v1, port 7420) is a valid opening: the machine answers with its AUTH.
        var machine = HandshakeMachine(
            identity: Self.bob, initiator: false, listenPort: 0, nonce: [UInt8](repeating: 7, count: 32))
        _ = machine.start(now: 0)
        let answer = Self.sent(machine.received(hello))
        guard case .auth(let signature)? = answer.first else {
            Issue.record("no AUTH for the vector HELLO: \(answer)")
            return
        }
        #expect(vectorPort == 7420)
        // Over exactly the transcript the spec gives: context, role byte 0x01, initiator HELLO, responder HELLO.
        let mine = WireMessage.hello(
            minVersion: 1, maxVersion: 1, nodeKey: Self.bob.publicKey, nonce: [UInt8](repeating: 7, count: 32),
            listenPort: 0)
        #expect(
            Handshake.verify(
                signature: signature, peerKey: Self.bob.publicKey, peerIsInitiator: false,
                initiatorHello: hello.encodedPayload, responderHello: mine.encodedPayload))
        // The vector AUTH (a filler signature by a filler key) proves nothing: refused with ERROR unauthenticated.
        let refusal = machine.received(auth)
        #expect(
            Self.sent(refusal).first.map { if case .error(.unauthenticated, _) = $0 { true } else { false } } == true)
        #expect(Self.failure(refusal)?.code == .unauthenticated)
        #expect(machine.isFinished)
        #expect(vectorKey != Self.bob.publicKey)
        // Any other vector as the first frame is a protocol violation, told to the peer before closing.
        for (type, message) in vectors where type != 0x01 {
            var fresh = HandshakeMachine(
                identity: Self.bob, initiator: false, listenPort: 0, nonce: [UInt8](repeating: 7, count: 32))
            _ = fresh.start(now: 0)
            let actions = fresh.received(message)
            #expect(Self.failure(actions)?.code == .protocolViolation, "first frame of type \(type)")
            #expect(Self.sent(actions).count == 1, "an ERROR frame first, for type \(type)")
        }
    }

    @Test func versionsSelfConnectionsSilenceAndTimeoutsFail() throws {
        func fresh() -> HandshakeMachine {
            var m = HandshakeMachine(
                identity: Self.bob, initiator: true, listenPort: 1, nonce: [UInt8](repeating: 9, count: 32),
                timeoutSeconds: 10)
            _ = m.start(now: 50)
            return m
        }
        var m = fresh()
        let v2 = m.received(
            .hello(
                minVersion: 2, maxVersion: 3, nodeKey: Self.alice.publicKey, nonce: [UInt8](repeating: 0, count: 32),
                listenPort: 0))
        #expect(Self.failure(v2)?.code == .unsupportedVersion)
        #expect(Self.sent(v2).first.map { if case .error(.unsupportedVersion, _) = $0 { true } else { false } } == true)
        m = fresh()
        let mirror = m.received(
            .hello(
                minVersion: 1, maxVersion: 1, nodeKey: Self.bob.publicKey, nonce: [UInt8](repeating: 0, count: 32),
                listenPort: 0))
        #expect(Self.failure(mirror)?.message == "connected to itself")
        m = fresh()
        let closed = m.closed()
        #expect(Self.failure(closed)?.code == .protocolViolation)
        m = fresh()
        // A timer that fires early is judged by the clock; at the deadline the handshake fails.
        let early = m.timerFired(now: 59)
        let due = m.timerFired(now: 60)
        let after = m.received(.ping(1))
        #expect(early.isEmpty)
        #expect(Self.failure(due)?.code == .unauthenticated)
        #expect(after.isEmpty)
    }
}

/// Fetch scheduling across peers and chunks, on an injected clock.
@Suite("The fetch schedule")
struct FetchScheduleTests {
    @Test func chunksGoToPeersThatHaveThemAndComeBackWhenAPeerFails() {
        var s = FetchSchedule(chunkCount: 6, alreadyHeld: [0], stallSeconds: 10)
        let all: (Int) -> Bool = { _ in true }
        let toA = s.take(peer: "a", count: 10, now: 0, has: { $0 % 2 == 0 })
        let toB = s.take(peer: "b", count: 2, now: 0, has: all)
        let toBAgain = s.take(peer: "b", count: 2, now: 0, has: all)
        #expect(toA == [2, 4] && toB == [1, 3] && toBAgain == [5])
        let first = s.delivered(1, peer: "b")
        let second = s.delivered(1, peer: "b")
        #expect(first && !second)
        // a fails: its chunks are needed again, and b (which has everything) takes them.
        s.release(peer: "a")
        let retaken = s.take(peer: "b", count: 8, now: 1, has: all)
        #expect(retaken == [2, 4])
        var fresh: [Bool] = []
        for i in [2, 3, 4, 5] { fresh.append(s.delivered(i, peer: "b")) }
        #expect(fresh == [true, true, true, true])
        #expect(s.isComplete)
    }

    @Test func anIdlePeerTakesOverAStalledChunkOnlyAfterHalfTheStallTime() {
        var s = FetchSchedule(chunkCount: 2, alreadyHeld: [], stallSeconds: 8)
        let all: (Int) -> Bool = { _ in true }
        let slow = s.take(peer: "slow", count: 2, now: 100, has: all)
        #expect(slow == [0, 1])
        // Nothing free: the fast peer learns when a takeover becomes possible, and gets nothing before.
        #expect(s.nextTakeover(for: "fast", has: all) == 104)
        #expect(s.nextTakeover(for: "fast", has: { $0 == 5 }) == nil)
        #expect(s.nextTakeover(for: "slow", has: all) == nil)
        let early = s.take(peer: "fast", count: 1, now: 103.9, has: all)
        let due = s.take(peer: "fast", count: 1, now: 104, has: all)
        #expect(early.isEmpty && due == [0])
        // Both may deliver chunk 0: only the first counts.
        let fromSlow = s.delivered(0, peer: "slow")
        let fromFast = s.delivered(0, peer: "fast")
        #expect(fromSlow && !fromFast)
        #expect(!s.isComplete)
        _ = s.delivered(1, peer: "slow")
        #expect(s.isComplete)
    }
}

import AlexandriaCore
import Testing

@testable import AlexandriaPeer

@Suite("Replication lag: how long the mirror has been behind its plan")
struct ReplicationLagTests {
    @Test func lagIsTheAgeOfTheOldestMissingReleaseAndZeroWhenCaughtUp() {
        let (a, b) = (ContentHash.of(Array("a".utf8)), ContentHash.of(Array("b".utf8)))
        var lag = ReplicationLag()
        #expect(lag.update(missing: [], now: 100) == (0, 0))
        #expect(lag.update(missing: [a], now: 100) == (1, 0))
        #expect(lag.update(missing: [a, b], now: 130) == (2, 30))
        // a arrives: b, planned at 130, is now the oldest.
        #expect(lag.update(missing: [b], now: 160) == (1, 30))
        #expect(lag.update(missing: [], now: 170) == (0, 0))
        // Planned again later: counted from then, not from the first time.
        #expect(lag.update(missing: [a], now: 200) == (1, 0))
        #expect(lag.update(missing: [a], now: 205) == (1, 5))
        // A clock that steps back never gives a negative lag.
        #expect(lag.update(missing: [a], now: 150) == (1, 0))
        #expect(lag.firstPlanned.count == 1)
    }
}

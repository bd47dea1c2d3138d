import AlexandriaPeer
import Foundation
import Testing

/// When the node scrubs (issue 13 §4): decided over an injected clock, kept across restarts.
@Suite("Scrub schedule")
struct ScrubScheduleTests {
    @Test func aScrubIsDueOneIntervalAfterTheLastAndNeverWhenOff() {
        let start = Date(timeIntervalSince1970: 1_000_000)
        let schedule = ScrubSchedule(intervalSeconds: 3600, last: start)
        #expect(!schedule.isDue(at: start))
        #expect(!schedule.isDue(at: start.addingTimeInterval(3599)))
        #expect(schedule.isDue(at: start.addingTimeInterval(3600)))
        let off = ScrubSchedule(intervalSeconds: 0, last: start)
        #expect(!off.isDue(at: start.addingTimeInterval(1e9)))
    }

    @Test func aNewNodeStartsCountingAtItsFirstRunAndARestartKeepsTheCount() throws {
        let path = NSTemporaryDirectory() + "/scrub-state-\(UUID().uuidString)"
        defer { unlink(path) }
        let first = Date(timeIntervalSince1970: 2_000_000)
        // No record: not due at once; the first run's time is recorded.
        let fresh = ScrubSchedule.load(from: path, intervalSeconds: 600, now: first)
        #expect(fresh.last == first && !fresh.isDue(at: first))
        // A restart 10 minutes later finds the record: the scrub is due, not postponed by the restart.
        let restarted = ScrubSchedule.load(from: path, intervalSeconds: 600, now: first.addingTimeInterval(600))
        #expect(restarted.last == first)
        #expect(restarted.isDue(at: first.addingTimeInterval(600)))
        var done = restarted
        done.last = first.addingTimeInterval(700)
        done.save(to: path)
        #expect(
            ScrubSchedule.load(from: path, intervalSeconds: 600, now: first.addingTimeInterval(800)).last == done.last)
        // A record from the future (a clock set back) is not trusted: counting starts again now.
        let earlier = first.addingTimeInterval(-10_000)
        #expect(ScrubSchedule.load(from: path, intervalSeconds: 600, now: earlier).last == earlier)
    }
}

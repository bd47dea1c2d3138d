import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A small score per peer address, kept in a file in the home across fetches, so a peer that sent wrong bytes is not
/// preferred next time.
///
/// A peer that misbehaved in a fetch (wrong bytes, a bad chunk list, chunks it claimed and did not have) drops to
/// `penalty` below zero; a peer that delivered verified bytes without misbehaving gains `reward`, up to `maximum`.
/// The fetcher uses peers below zero only after the others have done what they can, so a penalised peer recovers by
/// serving well when it is needed. The file is tab-separated `score<TAB>address` lines, rewritten atomically; two
/// fetches finishing at once may lose one's update, which only costs a little preference.
public final class PeerScores: @unchecked Sendable {
    public let path: String
    public static let penalty = 10
    public static let reward = 5
    public static let maximum = 10
    /// At most this many peers are remembered (the lowest scores are kept first: they matter most).
    public static let maxEntries = 4096
    private let lock = NSLock()
    private var scores: [String: Int] = [:]

    /// Loads the file at `path`; a missing or unreadable file means no scores. Malformed lines are skipped.
    public init(path: String) {
        self.path = path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        for line in text.split(separator: "\n").prefix(Self.maxEntries) {
            let parts = line.split(separator: "\t", maxSplits: 1)
            guard parts.count == 2, let score = Int(parts[0]), abs(score) <= 1_000 else { continue }
            scores[String(parts[1])] = score
        }
    }

    public func score(of peer: String) -> Int { lock.withLock { scores[peer] ?? 0 } }

    /// Updates the scores after a fetch and saves them. Errors writing the file are ignored (scores are a hint).
    public func record(used: [String], misbehaved: [String]) {
        let bad = Set(misbehaved)
        if used.isEmpty && bad.isEmpty { return }
        let text: String = lock.withLock {
            for peer in bad { scores[peer] = min(scores[peer] ?? 0, 0) - Self.penalty }
            for peer in used where !bad.contains(peer) {
                scores[peer] = min((scores[peer] ?? 0) + Self.reward, Self.maximum)
            }
            let kept = scores.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.prefix(Self.maxEntries)
            return kept.map { "\($0.value)\t\($0.key)\n" }.joined()
        }
        let temporary = path + ".tmp-\(getpid())"
        guard (try? text.write(toFile: temporary, atomically: false, encoding: .utf8)) != nil else { return }
        if rename(temporary, path) != 0 { unlink(temporary) }
    }
}

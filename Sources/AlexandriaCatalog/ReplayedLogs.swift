import AlexandriaManifest
import Crypto
import Foundation

/// Publisher logs already replayed and checked, so that reading a log does not verify every entry's signature and
/// fields again each time. An audit reads the publisher's log several times per lineage hop: without this, a release
/// page with a 20-hop lineage replayed about 80 logs, most of its render time.
///
/// Safe because a replay is a pure function of the publisher's key (fixed by its id, the key's fingerprint) and the
/// stored envelopes in index order: a cached replay is reused only when the stored envelopes begin, byte for byte,
/// with the ones it replayed, and then only the entries after them are checked and appended. Anything else (fewer
/// entries, a different one) replays from scratch, exactly as before.
final class ReplayedLogs: @unchecked Sendable {
    /// Most publishers kept; past it the cache starts over (a node with more publishers replays as before).
    static let maxPublishers = 1024

    private let lock = NSLock()
    private var logs: [PublisherID: (envelopes: [[UInt8]], log: PublisherLog)] = [:]

    func replay(_ publisher: PublisherID, key: P256.Signing.PublicKey, envelopes: [[UInt8]]) throws -> PublisherLog {
        var log = PublisherLog(publisherKey: key)
        var start = 0
        if let cached = lock.withLock({ logs[publisher] }), cached.envelopes.count <= envelopes.count,
            zip(cached.envelopes, envelopes).allSatisfy({ $0 == $1 })
        {
            log = cached.log
            start = cached.envelopes.count
        }
        for bytes in envelopes[start...] { try log.append(try DSSEEnvelope(json: bytes)) }
        lock.withLock {
            if logs[publisher] == nil && logs.count >= Self.maxPublishers { logs.removeAll() }
            logs[publisher] = (envelopes, log)
        }
        return log
    }
}

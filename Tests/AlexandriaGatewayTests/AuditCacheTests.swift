import AlexandriaCatalog
import AlexandriaManifest
import AlexandriaStore
import Foundation
import NIOHTTP1
import Synchronization
import Testing

@testable import AlexandriaGateway

/// The audits behind release pages (`AuditCache`) through the real route, store and catalog: a kept audit is shown
/// again at no cost, and past the budget a new one is refused with `503` and `Retry-After` until the budget refills.
@Suite("Release page audits: kept, and within a CPU budget")
struct AuditCacheTests {
    final class Clock: Sendable {
        let now = Mutex<Double>(0)
        var value: Double { now.withLock { $0 } }
        func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
    }

    @Test func pastTheBudgetANewAuditIsRefusedWhileAKeptOneIsStillShown() async throws {
        let dir = NSTemporaryDirectory() + "alexandria-audit-cache-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try ContentStore.initialize(at: dir + "/store")
        let store = try ContentStore(directory: dir + "/store")
        let catalog = try Catalog(path: dir + "/catalog.sqlite")
        let registry = Registry(store: store, catalog: catalog)
        let key = PublisherKey.generate()
        var manifests: [String] = []
        for version in ["1.0", "2.0"] {
            let folder = dir + "/m" + version
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data("weights \(version)".utf8).write(to: URL(fileURLWithPath: folder + "/model.bin"))
            manifests.append(
                try registry.publish(directory: folder, name: "tiny", version: version, key: key).manifestID)
        }
        let clock = Clock()
        // Any audit takes more CPU than this burst: one audit spends the budget, which refills at 1% of a core.
        let audits = AuditCache(share: 0.01, burstSeconds: 1e-9, capacity: 8, clock: { clock.value })
        let routes = PageRoutes(store: store, catalog: catalog, aliases: [:], node: nil, audits: audits)
        func view(_ version: String, uri given: String? = nil) async throws -> GatewayResponse {
            let uri = given ?? "/ui/\(key.id.description)/tiny/\(version)"
            return try #require(
                try await routes.respond(
                    to: GatewayRequest(method: .GET, uri: uri, target: RequestTarget(uri)!, headers: [:])))
        }
        func audit(_ r: GatewayResponse) -> String {
            r.headers["Server-Timing"].first?.split(separator: ",").last?.trimmingCharacters(in: .whitespaces) ?? ""
        }
        let first = try await view("1.0")
        #expect(first.status == .ok && audit(first) == "audit;desc=computed")
        // The kept audit costs nothing: shown however spent the budget is.
        for _ in 0..<3 {
            let again = try await view("1.0")
            #expect(again.status == .ok && audit(again) == "audit;desc=kept")
        }
        // The same manifest by its id resolves with the same (no) notes: the same kept audit.
        let byID = try await view("", uri: "/ui/manifest/" + manifests[0].dropFirst("sha256:".count))
        #expect(byID.status == .ok && audit(byID) == "audit;desc=kept")
        // Another release needs a new audit: refused, with when to come back.
        let refused = try await view("2.0")
        #expect(refused.status == .serviceUnavailable && audit(refused) == "audit;desc=busy")
        let retry = try #require(Int(refused.headers["Retry-After"].first ?? ""))
        #expect(retry >= 1)
        #expect(audits.computedCount == 1)
        // Once the budget has refilled, it is audited.
        clock.advance(Double(retry))
        let later = try await view("2.0")
        #expect(later.status == .ok && audit(later) == "audit;desc=computed")
        #expect(audits.computedCount == 2)
    }
}

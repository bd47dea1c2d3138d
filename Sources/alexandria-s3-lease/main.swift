// alexandria-s3-lease: takes the write lease on a bucket prefix and keeps renewing it until killed. It exists so
// tests can kill -9 a real lease holder in another process and watch a second node take over; it also lets an
// operator see who holds a prefix (`alexandria-s3-lease BUCKET PREFIX --show`).
//
//   alexandria-s3-lease BUCKET PREFIX HOLDER [TTL_MS]   hold the lease; prints "held" once taken
//   alexandria-s3-lease BUCKET PREFIX --show            print the lease object, or "free"
//
// Endpoint and credentials from S3_ENDPOINT, S3_REGION (default us-east-1), AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY. Exit status: 0 free/shown, 1 usage or configuration, 2 held by another node, 3 lost.
import AlexandriaObjectStore

#if canImport(Glibc)
    import Glibc
#endif

func fail(_ status: Int32, _ message: String) -> Never {
    let line = Array("alexandria-s3-lease: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(status)
}

var environment: [String: String] = [:]
var envp = environ
while let entry = envp.pointee {
    let pair = String(cString: entry)
    if let eq = pair.firstIndex(of: "=") { environment[String(pair[..<eq])] = String(pair[pair.index(after: eq)...]) }
    envp += 1
}
let args = CommandLine.arguments
guard args.count >= 4, let endpoint = environment["S3_ENDPOINT"] else {
    fail(1, "usage: alexandria-s3-lease BUCKET PREFIX (HOLDER [TTL_MS] | --show), with S3_ENDPOINT set")
}
do {
    let client = try S3Client(
        endpoint: endpoint, region: environment["S3_REGION"] ?? "us-east-1",
        credentials: try S3Credentials.resolve(environment: environment, file: environment["S3_CREDENTIALS_FILE"]))
    let ttl = args.count > 4 ? Int64(args[4]) ?? 30_000 : 30_000
    let keeper = LeaseKeeper(
        client: client, bucket: args[1], prefix: args[2], holder: args[3],
        policy: LeasePolicy(ttlMilliseconds: ttl, skewMilliseconds: min(2_000, ttl / 4)),
        settleMilliseconds: min(1_000, ttl / 5))
    if args[3] == "--show" {
        if let lease = try await keeper.read() {
            print("holder \(lease.holder) expires \(lease.expiresMilliseconds)")
        } else {
            print("free")
        }
        exit(0)
    }
    try await keeper.acquire()
    _ = Array("held\n".utf8).withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    try await keeper.keepRenewing()
} catch let error as ObjectStoreError where error.code == .leaseHeld {
    fail(error.message.contains("took over") ? 3 : 2, error.message)
} catch {
    fail(1, "\(error)")
}

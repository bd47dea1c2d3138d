#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An S3 access key and its secret.
public struct S3Credentials: Sendable {
    public let accessKey: String
    let secretKey: String

    public init(accessKey: String, secretKey: String) {
        self.accessKey = accessKey
        self.secretKey = secretKey
    }

    /// From `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in `environment`, else from `file` (the AWS shared
    /// credentials format: `[profile]` sections of `aws_access_key_id = …` / `aws_secret_access_key = …`), profile
    /// `AWS_PROFILE` or `default`.
    public static func resolve(environment: [String: String], file: String?) throws -> S3Credentials {
        if let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"], !id.isEmpty,
            !secret.isEmpty
        {
            return S3Credentials(accessKey: id, secretKey: secret)
        }
        guard let file else {
            throw ObjectStoreError(
                .configuration,
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a credentials file in "
                    + "[store] credentials_file")
        }
        let profile = environment["AWS_PROFILE"] ?? "default"
        let text = try readSmallFile(file)
        if let found = parse(text, profile: profile) { return found }
        throw ObjectStoreError(
            .configuration,
            "credentials file \(file) has no [\(profile)] section with aws_access_key_id and aws_secret_access_key")
    }

    static func parse(_ text: String, profile: String) -> S3Credentials? {
        var section = ""
        var id: String?
        var secret: String?
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.trimmingSpaces()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmingSpaces()
                if section.hasPrefix("profile ") { section = String(section.dropFirst(8)).trimmingSpaces() }
                continue
            }
            guard section == profile, let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq]).trimmingSpaces()
            let value = String(line[line.index(after: eq)...]).trimmingSpaces()
            if key == "aws_access_key_id" { id = value }
            if key == "aws_secret_access_key" { secret = value }
        }
        guard let id, let secret, !id.isEmpty, !secret.isEmpty else { return nil }
        return S3Credentials(accessKey: id, secretKey: secret)
    }

    static func readSmallFile(_ path: String) throws -> String {
        guard let f = fopen(path, "r") else {
            throw ObjectStoreError(
                .configuration, "cannot read credentials file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n == 0 { break }
            bytes += buffer[0..<n]
            if bytes.count > 1 << 20 {
                throw ObjectStoreError(.configuration, "credentials file \(path) is over 1 MiB")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        guard let first = firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let last = lastIndex(where: { $0 != " " && $0 != "\t" })!
        return String(self[first...last])
    }
}

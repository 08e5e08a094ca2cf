// Helper for scripts/stack: waits until the broker answers an authenticated SASL_SSL
// client, then converges the ACLs to scripts/stack.d/kafka-acls.txt. One JVM for both,
// instead of one kafka-acls (AclCommand) JVM per resource/operation combination.
//
// usage: java -cp <kafka classpath>:<dir> StackKafka <client.properties> <acls.txt> <timeout-seconds>
// exit: 0 ok, 2 not ready before the timeout, 3 authentication/authorization failure, 1 other.

import java.io.BufferedReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

public final class StackKafka {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: StackKafka <client.properties> <acls.txt> <timeout-seconds>");
            System.exit(1);
        }
        Properties props = new Properties();
        try (BufferedReader r = Files.newBufferedReader(Path.of(args[0]), StandardCharsets.UTF_8)) {
            props.load(r);
        }
        props.putIfAbsent(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, "localhost:19093");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
        List<AclBinding> wanted = parse(Path.of(args[1]));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[2]));

        try (Admin admin = Admin.create(props)) {
            waitReady(admin, deadline);
            converge(admin, wanted);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            System.err.println("kafka admin call failed: " + c);
            System.exit(c instanceof AuthenticationException || c instanceof AuthorizationException ? 3 : 1);
        }
    }

    private static void waitReady(Admin admin, long deadline) throws Exception {
        Throwable last = null;
        while (System.nanoTime() < deadline) {
            try {
                int n = admin.listTopics(new ListTopicsOptions().listInternal(true).timeoutMs(10000))
                        .names().get(15, TimeUnit.SECONDS).size();
                System.err.println("kafka ready: listed " + n + " topics over SASL_SSL");
                return;
            } catch (ExecutionException e) {
                last = e.getCause();
                if (last instanceof AuthenticationException || last instanceof AuthorizationException) {
                    throw e; // retrying cannot help
                }
            } catch (java.util.concurrent.TimeoutException e) {
                last = e;
            }
            Thread.sleep(1000);
        }
        System.err.println("kafka not ready before the timeout; last error: " + last);
        System.exit(2);
    }

    private static void converge(Admin admin, List<AclBinding> wanted) throws Exception {
        Set<String> principals = new LinkedHashSet<>();
        for (AclBinding b : wanted) principals.add(b.entry().principal());

        Set<AclBinding> existing = new HashSet<>();
        for (String p : principals) {
            AclBindingFilter f = new AclBindingFilter(ResourcePatternFilter.ANY,
                    new AccessControlEntryFilter(p, null, AclOperation.ANY, AclPermissionType.ANY));
            existing.addAll(admin.describeAcls(f).values().get());
        }
        List<AclBinding> toAdd = new ArrayList<>();
        for (AclBinding b : wanted) if (!existing.contains(b)) toAdd.add(b);
        List<AclBindingFilter> toRemove = new ArrayList<>();
        Set<AclBinding> wantedSet = new HashSet<>(wanted);
        for (AclBinding b : existing) if (!wantedSet.contains(b)) toRemove.add(b.toFilter());

        if (!toAdd.isEmpty()) admin.createAcls(toAdd).all().get();
        if (!toRemove.isEmpty()) admin.deleteAcls(toRemove).all().get();
        System.err.println("kafka ACLs: " + wanted.size() + " bindings for " + principals.size()
                + " principals (added " + toAdd.size() + ", removed " + toRemove.size() + ")");
    }

    private static List<AclBinding> parse(Path file) throws Exception {
        List<AclBinding> out = new ArrayList<>();
        int lineNo = 0;
        for (String raw : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            lineNo++;
            String line = raw.replaceAll("#.*", "").trim();
            if (line.isEmpty()) continue;
            String[] f = line.split("\\s+");
            if (f.length != 5) throw new IllegalArgumentException(file + ":" + lineNo + ": expected 5 fields");
            ResourceType type = enumOf(ResourceType.values(), f[1], file, lineNo);
            PatternType pattern = enumOf(PatternType.values(), f[2], file, lineNo);
            ResourcePattern resource = new ResourcePattern(type, f[3], pattern);
            for (String op : f[4].split(",")) {
                AclOperation operation = enumOf(AclOperation.values(), op, file, lineNo);
                out.add(new AclBinding(resource, new AccessControlEntry(
                        "User:" + f[0], "*", operation, AclPermissionType.ALLOW)));
            }
        }
        return out;
    }

    // Matches "IdempotentWrite", "idempotent_write", "transactional-id" etc. to enum constants.
    private static <E extends Enum<E>> E enumOf(E[] values, String s, Path file, int lineNo) {
        String key = s.replaceAll("[-_]", "");
        for (E v : values) if (v.name().replace("_", "").equalsIgnoreCase(key)) return v;
        throw new IllegalArgumentException(file + ":" + lineNo + ": unknown value '" + s + "'");
    }

    private StackKafka() {}
}

import { assertEquals } from "../../testing/assert.ts";
import { parseCgroupPath } from "./cgroup_path.ts";

const ID = "3f1c9a7e5b2d4c6a8e0f1b3d5c7a9e2f4b6d8c0a1e3f5b7d9c2a4e6f8b0d1c3e";
const UID = "5d2c7a1e-9b3f-4c8d-a6e2-1f0b7c9d3e4a";
const UID_ = UID.replaceAll("-", "_");

Deno.test("cgroupfs driver: burstable, guaranteed and besteffort pods", () => {
  assertEquals(parseCgroupPath(`/kubepods/burstable/pod${UID}/${ID}`), {
    id: ID,
    podUid: UID,
    qosFromPath: "burstable",
    runtime: "",
  });
  assertEquals(parseCgroupPath(`/kubepods/pod${UID}/${ID}`)?.qosFromPath, "guaranteed");
  assertEquals(parseCgroupPath(`/kubepods/besteffort/pod${UID}/${ID}`)?.qosFromPath, "besteffort");
  // cri-o under the cgroupfs driver names the leaf crio-<id>.
  assertEquals(parseCgroupPath(`/kubepods/besteffort/pod${UID}/crio-${ID}`), {
    id: ID,
    podUid: UID,
    qosFromPath: "besteffort",
    runtime: "crio",
  });
});

Deno.test("systemd driver: containerd, docker and cri-o scopes", () => {
  assertEquals(
    parseCgroupPath(
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    ),
    { id: ID, podUid: UID, qosFromPath: "burstable", runtime: "containerd" },
  );
  assertEquals(parseCgroupPath(`kubepods.slice/kubepods-pod${UID_}.slice/docker-${ID}.scope`), {
    id: ID,
    podUid: UID,
    qosFromPath: "guaranteed",
    runtime: "docker",
  });
  assertEquals(
    parseCgroupPath(
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope`,
    ),
    { id: ID, podUid: UID, qosFromPath: "besteffort", runtime: "crio" },
  );
});

Deno.test("containerd's own systemd-style name below its service", () => {
  assertEquals(
    parseCgroupPath(
      `/system.slice/containerd.service/kubepods-besteffort-pod${UID_}.slice:cri-containerd:${ID}`,
    ),
    { id: ID, podUid: UID, qosFromPath: "besteffort", runtime: "containerd" },
  );
  assertEquals(parseCgroupPath(`/kubepods-pod${UID_}.slice:cri-containerd:${ID}`)?.qosFromPath, "guaranteed");
});

Deno.test("any prefix before the kubelet's tree", () => {
  for (const prefix of ["/huatuo-it-disc", "/system.slice/containerd.service", "/a/b/c", ""]) {
    assertEquals(parseCgroupPath(`${prefix}/kubepods/burstable/pod${UID}/${ID}`)?.podUid, UID, prefix);
    assertEquals(
      parseCgroupPath(`${prefix}/kubepods.slice/kubepods-pod${UID_}.slice/docker-${ID}.scope`)?.id,
      ID,
      prefix,
    );
  }
});

Deno.test("static pods carry a config-hash UID", () => {
  const hash = "8a5f0c3e1b7d9f2a4c6e8b0d1f3a5c7e";
  assertEquals(parseCgroupPath(`/kubepods/burstable/pod${hash}/${ID}`)?.podUid, hash);
  assertEquals(
    parseCgroupPath(
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${hash}.slice/crio-${ID}.scope`,
    )
      ?.podUid,
    hash,
  );
});

Deno.test("plain docker, and bare ids outside kubepods", () => {
  assertEquals(parseCgroupPath(`/docker/${ID}`), { id: ID, podUid: "", qosFromPath: "", runtime: "docker" });
  assertEquals(parseCgroupPath(`/system.slice/docker-${ID}.scope`), {
    id: ID,
    podUid: "",
    qosFromPath: "",
    runtime: "docker",
  });
  assertEquals(parseCgroupPath(`/default/${ID}`), { id: ID, podUid: "", qosFromPath: "", runtime: "" });
});

Deno.test("pod slices, QoS slices, services and malformed ids are not containers", () => {
  for (
    const p of [
      "",
      "/",
      "/kubepods",
      "/kubepods/burstable",
      `/kubepods/burstable/pod${UID}`,
      "/kubepods.slice",
      "/kubepods.slice/kubepods-burstable.slice",
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`,
      "/system.slice/containerd.service",
      "/docker",
      `/docker/${ID.slice(0, 63)}`,
      `/docker/${ID}x`,
      `/docker/${ID.toUpperCase()}`,
      `/kubepods.slice/kubepods-pod${UID_}.slice/crio-conmon-${ID}.scope`,
      `/kubepods.slice/kubepods-pod${UID_}.slice/podman-${ID}.scope`,
    ]
  ) {
    assertEquals(parseCgroupPath(p), undefined, p);
  }
});

Deno.test("the pause container is a container like any other", () => {
  const pause = "a".repeat(64);
  assertEquals(parseCgroupPath(`/kubepods/besteffort/pod${UID}/${pause}`)?.id, pause);
});

'use strict';
// The Node.js client against a real xfrm-offloadd started by the test (the repo's Python
// server on a Unix socket in a temporary folder): SAs, policies, packets, events, errors.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { connect, errorDetails, grpc } = require('..');

const PYTHON =
  process.env.XO_PYTHON || path.resolve(__dirname, '..', '..', '..', '.venv', 'bin', 'python');
const KEY = Buffer.concat([Buffer.from([...Array(16).keys()]), Buffer.from('a0a1a2a3', 'hex')]);
const SPI = 0x1001;
const INBOUND = 2;
const PACKET = 4;

function sa(dev, inbound, overrides = {}) {
  return {
    id: { daddr: '192.0.2.2', spi: SPI, proto: 50 },
    saddr: '192.0.2.1',
    family: 'ADDRESS_FAMILY_INET',
    reqid: 1,
    mode: 'XFRM_MODE_TUNNEL',
    replay_window: inbound ? 64 : 0,
    aead: { alg_name: 'rfc4106(gcm(aes))', alg_key: KEY, alg_icv_len: 128 },
    sel: { saddr: '198.51.100.0', prefixlen_s: 24, daddr: '203.0.113.0', prefixlen_d: 24 },
    dir: inbound ? 'SA_DIR_IN' : 'SA_DIR_OUT',
    offload: { dev, flags: (inbound ? INBOUND : 0) | PACKET },
    ...overrides,
  };
}

function policy(dev, inbound) {
  return {
    sel: { saddr: '198.51.100.0', prefixlen_s: 24, daddr: '203.0.113.0', prefixlen_d: 24 },
    dir: inbound ? 'POLICY_DIR_IN' : 'POLICY_DIR_OUT',
    tmpl: [
      {
        id: { daddr: '192.0.2.2', proto: 50 },
        saddr: '192.0.2.1',
        reqid: 1,
        mode: 'XFRM_MODE_TUNNEL',
      },
    ],
    offload: { dev, flags: PACKET },
  };
}

function checksum(header) {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/** An IPv4/UDP packet 198.51.100.10 -> 203.0.113.20 whose payload carries its number. */
function udp4(n) {
  const payload = Buffer.alloc(64, n & 0xff);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(4000, 0);
  udp.writeUInt16BE(5000, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  ip.writeUInt16BE(n, 4);
  ip.writeUInt16BE(0x4000, 6);
  ip.writeUInt8(64, 8);
  ip.writeUInt8(17, 9);
  Buffer.from([198, 51, 100, 10]).copy(ip, 12);
  Buffer.from([203, 0, 113, 20]).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, udp, payload]);
}

/** RFC 4106 decryption of a tunnel-mode ESP packet: { spi, seq, inner, nextHeader }. */
function openEsp(packet) {
  assert.equal(packet[0] >> 4, 4);
  assert.equal(packet[9], 50, 'outer protocol is ESP');
  const esp = packet.subarray((packet[0] & 0x0f) * 4);
  const spi = esp.readUInt32BE(0);
  const seq = esp.readUInt32BE(4);
  const iv = esp.subarray(8, 16);
  const body = esp.subarray(16, esp.length - 16);
  const tag = esp.subarray(esp.length - 16);
  const decipher = crypto.createDecipheriv(
    'aes-128-gcm',
    KEY.subarray(0, 16),
    Buffer.concat([KEY.subarray(16), iv]),
  );
  decipher.setAAD(esp.subarray(0, 8));
  decipher.setAuthTag(tag);
  const plain = Buffer.concat([decipher.update(body), decipher.final()]); // throws if forged
  const padLength = plain[plain.length - 2];
  const padding = plain.subarray(plain.length - 2 - padLength, plain.length - 2);
  assert.deepEqual([...padding], [...Array(padLength).keys()].map((i) => i + 1));
  return {
    spi,
    seq,
    inner: plain.subarray(0, plain.length - 2 - padLength),
    nextHeader: plain[plain.length - 1],
  };
}

async function startServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xo-node-'));
  const sock = path.join(dir, 's.sock');
  const proc = spawn(
    PYTHON,
    ['-m', 'xfrm_offload.server', '--listen', `unix:${sock}`, '--device', 'eth0', '--device', 'eth1'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  proc.stderr.on('data', (chunk) => {
    log += chunk;
  });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const nic = connect(`unix:${sock}`, { timeoutMs: 5000 });
  for (let i = 0; ; i += 1) {
    if (fs.existsSync(sock)) {
      try {
        await nic.call('device', 'ListDevices', {});
        break;
      } catch {
        // not serving yet
      }
    }
    if (i >= 400 || proc.exitCode !== null) {
      throw new Error(`xfrm-offloadd did not start:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    nic,
    async stop() {
      nic.close();
      proc.kill('SIGTERM');
      const code = await exited;
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Events from WatchEvents until `until(events)` holds (fails after 10 s). */
function watch(nic, request, until) {
  const call = nic.clients.device.WatchEvents(request);
  const events = [];
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      call.cancel();
      reject(new Error(`events so far: ${JSON.stringify(events.map((e) => e.kind))}`));
    }, 10000);
    call.on('data', (event) => {
      events.push(event);
      if (until(events)) {
        clearTimeout(timer);
        call.cancel();
        resolve(events);
      }
    });
    call.on('error', (err) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
  });
  return done;
}

/** One PacketStream batch: the response to it. */
function pushBatch(nic, dev, direction, packets) {
  return new Promise((resolve, reject) => {
    const call = nic.clients.datapath.PacketStream();
    const replies = [];
    call.on('data', (reply) => replies.push(reply));
    call.on('error', reject);
    call.on('end', () => resolve(replies));
    call.write({ dev, direction, packets });
    call.end();
  });
}

let server;
test.before(async () => {
  server = await startServer();
});
test.after(async () => {
  assert.equal(await server.stop(), 0, 'the server stops cleanly on SIGTERM');
});

test('keepCase: the proto field names of the contract, not camelCase', async () => {
  const { devices } = await server.nic.call('device', 'ListDevices', {});
  assert.deepEqual(
    devices.map((d) => d.name),
    ['eth0', 'eth1'],
  );
  assert.ok('state_count' in devices[0] && !('stateCount' in devices[0]));
});

test('an SA and a policy, a batch of packets out as ESP, the events they made', async () => {
  const { nic } = server;
  const events = watch(
    nic,
    { devs: ['eth0'], kinds: ['EVENT_KIND_STATE_ADDED', 'EVENT_KIND_POLICY_ADDED'] },
    (seen) => seen.length >= 2,
  );
  await nic.call('device', 'ListDevices', {}); // the watch is open before the adds
  const added = await nic.call('xfrmDev', 'StateAdd', { sa: sa('eth0', false) });
  assert.equal(added.offloaded, true);
  assert.match(added.offload_handle, /^\d+$/); // uint64 as a string (longs: String)
  const pol = await nic.call('xfrmDev', 'PolicyAdd', { policy: policy('eth0', false) });
  assert.match(pol.offload_handle, /^\d+$/);

  const sent = [...Array(16).keys()].map(udp4);
  const replies = await pushBatch(
    nic,
    'eth0',
    'PACKET_DIRECTION_TX',
    sent.map((data, id) => ({ id, data })),
  );
  assert.equal(replies.length, 1);
  const { results } = replies[0];
  assert.deepEqual(
    results.map((r) => r.verdict),
    Array(16).fill('VERDICT_PASS'),
  );
  results.forEach((result, i) => {
    const opened = openEsp(result.data);
    assert.equal(opened.spi, SPI);
    assert.equal(opened.seq, i + 1); // sequence numbers from 1
    assert.equal(opened.nextHeader, 4); // IPv4 inside: tunnel mode
    assert.deepEqual(opened.inner, sent[i]); // byte-exact
  });

  const seen = await events;
  assert.deepEqual(
    seen.map((e) => [e.kind, e.dev]),
    [
      ['EVENT_KIND_STATE_ADDED', 'eth0'],
      ['EVENT_KIND_POLICY_ADDED', 'eth0'],
    ],
  );
  assert.equal(seen[0].object.state.offload_handle, added.offload_handle);
  assert.equal(seen[0].object.id.daddr, '192.0.2.2');

  const { states } = await nic.call('device', 'ListStates', { dev: 'eth0' });
  assert.equal(states.length, 1);
  assert.equal(states[0].curlft.packets, '16');
  assert.equal(states[0].sa.aead.alg_key.length, 0, 'keys only with include_keys');
});

test('refusals decode into google.rpc ErrorInfo and BadRequest', async () => {
  const { nic } = server;
  await assert.rejects(nic.call('xfrmDev', 'StateAdd', { sa: sa('eth0', false) }), (err) => {
    assert.equal(err.code, grpc.status.ALREADY_EXISTS);
    const details = errorDetails(err);
    assert.equal(details.code, grpc.status.ALREADY_EXISTS);
    assert.equal(details.reason, 'EEXIST');
    assert.equal(details.errno, 17);
    assert.deepEqual(
      details.violations.map((v) => v.field),
      ['sa.id.spi'],
    );
    return true;
  });
  const badIcv = sa('eth1', true, {
    aead: { alg_name: 'rfc4106(gcm(aes))', alg_key: KEY, alg_icv_len: 100 },
  });
  await assert.rejects(nic.call('xfrmDev', 'StateAdd', { sa: badIcv }), (err) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    const details = errorDetails(err);
    assert.equal(details.reason, 'EINVAL');
    assert.equal(details.errno, 22);
    assert.equal(details.violations[0].field, 'sa.aead.alg_icv_len');
    assert.ok(!JSON.stringify(details).includes(KEY.toString('hex')), 'no key in errors');
    return true;
  });
  await assert.rejects(nic.call('device', 'GetDevice', { name: 'eth9' }), (err) => {
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.equal(errorDetails(err).violations[0].field, 'name');
    return true;
  });
});

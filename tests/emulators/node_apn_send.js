// One provider.send() of @parse/node-apn, unmodified, against the APNs emulator.
// stdin: {"provider": <apn.Provider options; "pfx" base64>, "topic", "tokens", "alert"}
// stdout: {"sent": [device...], "failed": [{"device", "status", "reason", "error"}]}
const apn = require(process.env.NODE_APN_PATH);

let input = '';
process.stdin.on('data', chunk => (input += chunk));
process.stdin.on('end', async () => {
  const config = JSON.parse(input);
  const options = { ...config.provider };
  if (options.pfx) options.pfx = Buffer.from(options.pfx, 'base64');
  const provider = new apn.Provider(options);
  const note = new apn.Notification();
  note.alert = config.alert;
  note.topic = config.topic;
  note.pushType = 'alert';
  try {
    const result = await provider.send(note, config.tokens);
    const failed = result.failed.map(f => ({
      device: f.device,
      status: f.status === undefined ? null : Number(f.status),
      reason: f.response ? f.response.reason : null,
      error: f.error ? String(f.error.message || f.error) : null,
    }));
    process.stdout.write(JSON.stringify({ sent: result.sent.map(s => s.device), failed }));
  } finally {
    await provider.shutdown();
  }
});

// hello-node: an Express app (a dependency from npm, see package.json and package-lock.json).
const express = require("express");

const app = express();

app.get("/", (req, res) => {
  res.json({ app: "hello-node", message: "hello from Express", express: require("express/package.json").version });
});

app.get("/healthz", (req, res) => res.json({ ok: true }));

const port = Number(process.env.PORT || 8080);
app.listen(port, () => console.log(`hello-node listening on ${port}`));

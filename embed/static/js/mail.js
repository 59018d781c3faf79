// The webmail's small script: live counts (server-sent events), keyboard
// shortcuts, the compose editor with drafts saved as you type, and upload
// progress. Every page works without it.
(function () {
  "use strict";
  var doc = document;

  function csrfToken() {
    var f = doc.querySelector("input[name=csrf]");
    return f ? f.value : "";
  }

  // Live counts: the server sends the folder counts whenever the mailbox
  // changes; the inbox list offers to show new messages.
  function live() {
    if (!window.EventSource || !doc.querySelector(".mailnav")) return;
    var inbox = doc.querySelector("[data-count=inbox]");
    var last = inbox ? parseInt(inbox.textContent || "0", 10) : 0;
    var es = new EventSource("/mail/events");
    es.addEventListener("mailbox", function (ev) {
      var counts = JSON.parse(ev.data) || {};
      doc.querySelectorAll("[data-count]").forEach(function (el) {
        var c = counts[el.getAttribute("data-count")] || { total: 0, unread: 0 };
        var n = el.getAttribute("data-count") === "inbox" ? c.unread : c.total;
        el.textContent = n ? String(n) : "";
      });
      var unread = (counts.inbox || {}).unread || 0;
      var banner = doc.getElementById("newmail");
      if (banner && unread > last) banner.hidden = false;
      last = unread;
      doc.title = doc.title.replace(/^\(\d+\) /, "");
      if (unread > 0) doc.title = "(" + unread + ") " + doc.title;
    });
  }

  // Keyboard shortcuts: single keys, as in other webmail; none while typing.
  function shortcuts() {
    var rows = Array.prototype.slice.call(doc.querySelectorAll("#messages li"));
    var cur = -1;
    var pendingG = false;
    function focusRow(i) {
      if (!rows.length) return;
      cur = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach(function (r) { r.classList.remove("cursor"); });
      rows[cur].classList.add("cursor");
      rows[cur].querySelector("a.open").focus();
    }
    function click(key) {
      var el = doc.querySelector("[data-key='" + key + "']");
      if (el) { el.click(); return true; }
      return false;
    }
    doc.addEventListener("keydown", function (e) {
      var t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) return;
      var k = e.key;
      if (pendingG) {
        pendingG = false;
        if (k === "i") { window.location = "/mail/inbox"; e.preventDefault(); }
        if (k === "s") { window.location = "/mail/sent"; e.preventDefault(); }
        if (k === "d") { window.location = "/mail/drafts"; e.preventDefault(); }
        return;
      }
      switch (k) {
        case "g": pendingG = true; return;
        case "j": focusRow(cur + 1); break;
        case "k": focusRow(cur - 1); break;
        case "o":
          if (cur >= 0) rows[cur].querySelector("a.open").click();
          break;
        case "x":
          if (cur >= 0) { var cb = rows[cur].querySelector("input[type=checkbox]"); cb.checked = !cb.checked; }
          break;
        case "?": {
          var d = doc.getElementById("keys");
          if (d && d.showModal) d.showModal();
          break;
        }
        case "c": case "r": case "a": case "f": case "s": case "e": case "#":
          if (!click(k)) return;
          break;
        default:
          return;
      }
      e.preventDefault();
    });
    var help = doc.getElementById("keyshelp");
    if (help) help.addEventListener("click", function () {
      var d = doc.getElementById("keys");
      if (d && d.showModal) d.showModal();
    });
    var all = doc.getElementById("selectall");
    if (all) all.addEventListener("change", function () {
      doc.querySelectorAll("#messages input[type=checkbox]").forEach(function (cb) { cb.checked = all.checked; });
    });
  }

  // The reading frame: size it to its content and say when images were
  // blocked (the body's response tells how many).
  function reader() {
    var frame = doc.getElementById("body");
    if (!frame || frame.tagName !== "IFRAME") return;
    fetch(frame.src, { credentials: "same-origin" }).then(function (r) {
      var n = parseInt(r.headers.get("X-Sealpost-Blocked-Images") || "0", 10);
      var note = doc.getElementById("remote");
      if (note && n > 0) note.hidden = false;
    }).catch(function () {});
    var pr = doc.getElementById("doprint");
    if (pr) pr.addEventListener("click", function () { window.print(); });
  }

  // Compose: a formatted editor over the plain textarea, drafts saved as
  // you type, and a progress bar for attachments.
  function compose() {
    var form = doc.getElementById("composeform");
    if (!form) return;
    var ta = doc.getElementById("body");
    var editor = doc.getElementById("editor");
    var area = doc.getElementById("editarea");
    var draft = doc.getElementById("draft");
    var saved = doc.getElementById("saved");
    function format() {
      var r = form.querySelector("input[name=format]:checked");
      return r ? r.value : "html";
    }
    function toEditor() {
      area.innerHTML = ta.value; // the server sanitized it when it was saved; the editor is ours
      editor.hidden = false;
      ta.hidden = true;
    }
    function fromEditor() {
      if (!editor.hidden) ta.value = area.innerHTML;
    }
    function textOf(html) {
      var d = doc.createElement("div");
      d.innerHTML = html;
      return d.innerText;
    }
    if (format() === "html") toEditor();
    form.querySelectorAll("input[name=format]").forEach(function (r) {
      r.addEventListener("change", function () {
        if (format() === "html") {
          var esc = doc.createElement("div");
          esc.textContent = ta.value;
          ta.value = esc.innerHTML.replace(/\n/g, "<br>");
          toEditor();
        } else {
          ta.value = textOf(area.innerHTML);
          editor.hidden = true;
          ta.hidden = false;
        }
        schedule();
      });
    });
    editor.querySelectorAll("[data-cmd]").forEach(function (b) {
      b.addEventListener("click", function () {
        var cmd = b.getAttribute("data-cmd");
        var arg = b.getAttribute("data-arg");
        if (cmd === "createLink") {
          arg = window.prompt("Link address (https://…)");
          if (!arg || !/^(https?:|mailto:)/i.test(arg)) return;
        }
        doc.execCommand(cmd, false, arg);
        area.focus();
        schedule();
      });
    });

    var timer = null, busy = false;
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(save, 2000);
    }
    function save() {
      if (busy) { schedule(); return; }
      fromEditor();
      var data = new URLSearchParams();
      ["draft", "to", "cc", "bcc", "subject", "body", "expires", "passcode"].forEach(function (n) {
        var el = form.elements[n];
        if (el) data.set(n, el.value);
      });
      data.set("format", format());
      ["no_reply", "no_forward", "no_print", "read_notify"].forEach(function (n) {
        var el = form.elements[n];
        if (el && el.checked) data.set(n, "on");
      });
      data.set("csrf", csrfToken());
      busy = true;
      fetch("/mail/autosave", { method: "POST", body: data, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (j) {
          if (j.id) {
            draft.value = j.id;
            if (saved) saved.textContent = "Draft saved " + j.saved;
          } else if (j.error && saved) {
            saved.textContent = j.error;
          }
        })
        .catch(function () { if (saved) saved.textContent = "Not saved: no connection."; })
        .finally(function () { busy = false; });
    }
    form.addEventListener("input", function (e) {
      if (e.target.type !== "file") schedule();
    });
    area.addEventListener("input", schedule);

    // Files: sent with the form at once, with a progress bar.
    var files = doc.getElementById("files");
    var progress = doc.getElementById("progress");
    var pressed = null;
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      b.addEventListener("click", function () { pressed = b; });
    });
    if (files) files.addEventListener("change", function () {
      if (files.files.length) {
        pressed = doc.getElementById("attach");
        form.requestSubmit ? form.requestSubmit(pressed) : form.submit();
      }
    });
    form.addEventListener("submit", function (e) {
      clearTimeout(timer);
      fromEditor();
      if (!files || !files.files.length || !window.XMLHttpRequest) return;
      e.preventDefault();
      var data = new FormData(form);
      if (pressed && pressed.name) data.set(pressed.name, pressed.value);
      // Fields first, files last: the server streams the files into the
      // draft as they arrive.
      var ordered = new FormData();
      var fileParts = [];
      data.forEach(function (v, k) { if (v instanceof File) fileParts.push([k, v]); else ordered.append(k, v); });
      fileParts.forEach(function (p) { ordered.append(p[0], p[1]); });
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      progress.hidden = false;
      xhr.upload.onprogress = function (ev) {
        if (ev.lengthComputable) progress.value = Math.round(ev.loaded * 100 / ev.total);
      };
      xhr.onload = function () {
        var to = xhr.responseURL || "";
        if (to && to.indexOf("/mail/compose") < 0) { window.location = to; return; }
        // The compose form again (saved, or with problems shown next to
        // their fields): show the server's page.
        doc.open();
        doc.write(xhr.responseText);
        doc.close();
      };
      xhr.onerror = function () {
        progress.hidden = true;
        if (saved) saved.textContent = "The upload was interrupted. Try again.";
      };
      xhr.send(ordered);
    });
  }

  live();
  shortcuts();
  reader();
  compose();
})();

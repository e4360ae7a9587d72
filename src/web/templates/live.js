// 看板的实时更新（src/web/live.rs）：打开的页面随数据库变化，不必刷新。
// The board's only script, served from this origin (CSP script-src 'self'). It opens the
// event stream /events; each `change` event carries 总览's figures as JSON, written as text
// into the elements marked data-live="<key>". After the first event (the state when the
// stream opened) it fetches this page again and swaps in its data-live-region elements (the
// charts, 支部's list), unless a form field has the focus: then a notice offers to refresh.
// Without script every page still works; it just does not update itself.
(function () {
  'use strict';
  if (!window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var root = document.documentElement;
  var seen = false;
  var fetching = false;
  var again = false;
  var notice = null;

  function say(text, link) {
    var main = document.getElementById('main');
    if (!main) {
      return;
    }
    if (!notice) {
      notice = document.createElement('p');
      notice.className = 'live-notice';
      notice.setAttribute('role', 'status');
      main.insertBefore(notice, main.firstChild);
    }
    notice.textContent = text;
    if (link) {
      var a = document.createElement('a');
      a.href = location.href;
      a.textContent = link;
      notice.appendChild(a);
    }
  }

  function typing() {
    var a = document.activeElement;
    return !!a && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }

  function figures(f) {
    var els = document.querySelectorAll('[data-live]');
    for (var i = 0; i < els.length; i++) {
      var key = els[i].getAttribute('data-live');
      if (Object.prototype.hasOwnProperty.call(f, key)) {
        var v = f[key];
        els[i].textContent = v === null || v === undefined ? '—' : String(v);
      }
    }
  }

  // The page again, from this server (escaped there like any page), its regions swapped in.
  function regions() {
    if (!document.querySelector('[data-live-region]')) {
      return;
    }
    if (typing()) {
      say('有新数据，', '刷新');
      return;
    }
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    fetch(location.href, { credentials: 'same-origin', redirect: 'manual' })
      .then(function (r) {
        if (!r.ok) {
          throw new Error(String(r.status));
        }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var olds = document.querySelectorAll('[data-live-region]');
        for (var i = 0; i < olds.length; i++) {
          var name = olds[i].getAttribute('data-live-region');
          var fresh = doc.querySelector('[data-live-region="' + name + '"]');
          if (fresh) {
            olds[i].replaceWith(document.importNode(fresh, true));
          }
        }
        if (notice) {
          notice.remove();
          notice = null;
        }
      })
      .catch(function () {
        say('有新数据，', '刷新');
      })
      .then(function () {
        fetching = false;
        if (again) {
          again = false;
          regions();
        }
      });
  }

  var es = new EventSource('/events');
  es.addEventListener('open', function () {
    root.setAttribute('data-live-state', 'open');
  });
  es.addEventListener('change', function (e) {
    var f;
    try {
      f = JSON.parse(e.data);
    } catch (_) {
      return;
    }
    figures(f);
    root.setAttribute('data-live-updated', f.updated_at || '');
    if (seen) {
      regions();
    }
    seen = true;
  });
  es.addEventListener('error', function () {
    if (es.readyState === EventSource.CLOSED) {
      root.setAttribute('data-live-state', 'closed');
      say('实时更新已停止（可能已退出登录或看板已重启），请', '刷新页面');
    }
  });
})();

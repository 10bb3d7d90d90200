-- The trees the scan builds itself (json.c, tree_build) read as cJSON's:
-- each event gives the same request as the same event with a member
-- whose number is longer than the scan takes, which makes cJSON parse it
-- all.  Dense arrays overrun the room the functions lend and the first
-- guess of nodes.  One row per event and way of transforming it.

create table tree_event(name, fn, event);
insert into tree_event values
('identify-dense', 'identify', '{"type":"identify","userId":"u1","traits":{"email":"a@b.c","name":"A B","tags":[0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9],"deep":[[1],[2],[[3]],{"a":[4,5]}],"x":{"y":[0,0,0,0,0,0,0,0,0,0,0,0]},"phone":"+1 555","company":{"name":"C"}}}'),
('identify-small', 'identify', '{"type":"identify","userId":"u2","traits":{"email":"x@y.z","firstName":"F","lastName":"L"}}'),
('identify-many-traits', 'identify', '{"type":"identify","userId":"u3","traits":{"t0":0,"t1":1,"t2":2,"t3":3,"t4":4,"t5":5,"t6":6,"t7":7,"t8":8,"t9":9,"t10":10,"t11":11,"t12":12,"t13":13,"t14":14,"t15":15,"t16":16,"t17":17,"t18":18,"t19":19,"t20":20,"t21":21,"t22":22,"t23":23,"t24":24,"t25":25,"t26":26,"t27":27,"t28":28,"t29":29,"t30":30,"t31":31,"t32":32,"t33":33,"t34":34,"t35":35,"t36":36,"t37":37,"t38":38,"t39":39,"t40":40,"t41":41,"t42":42,"t43":43,"t44":44,"t45":45,"t46":46,"t47":47,"t48":48,"t49":49,"t50":50,"t51":51,"t52":52,"t53":53,"t54":54,"t55":55,"t56":56,"t57":57,"t58":58,"t59":59,"t60":60,"t61":61,"t62":62,"t63":63,"t64":64,"t65":65,"t66":66,"t67":67,"t68":68,"t69":69,"t70":70,"t71":71,"t72":72,"t73":73,"t74":74,"t75":75,"t76":76,"t77":77,"t78":78,"t79":79,"t80":80,"t81":81,"t82":82,"t83":83,"t84":84,"t85":85,"t86":86,"t87":87,"t88":88,"t89":89,"t90":90,"t91":91,"t92":92,"t93":93,"t94":94,"t95":95,"t96":96,"t97":97,"t98":98,"t99":99,"t100":100,"t101":101,"t102":102,"t103":103,"t104":104,"t105":105,"t106":106,"t107":107,"t108":108,"t109":109,"t110":110,"t111":111,"t112":112,"t113":113,"t114":114,"t115":115,"t116":116,"t117":117,"t118":118,"t119":119,"t120":120,"t121":121,"t122":122,"t123":123,"t124":124,"t125":125,"t126":126,"t127":127,"t128":128,"t129":129,"t130":130,"t131":131,"t132":132,"t133":133,"t134":134,"t135":135,"t136":136,"t137":137,"t138":138,"t139":139,"t140":140,"t141":141,"t142":142,"t143":143,"t144":144,"t145":145,"t146":146,"t147":147,"t148":148,"t149":149,"t150":150,"t151":151,"t152":152,"t153":153,"t154":154,"t155":155,"t156":156,"t157":157,"t158":158,"t159":159,"t160":160,"t161":161,"t162":162,"t163":163,"t164":164,"t165":165,"t166":166,"t167":167,"t168":168,"t169":169,"t170":170,"t171":171,"t172":172,"t173":173,"t174":174,"t175":175,"t176":176,"t177":177,"t178":178,"t179":179,"t180":180,"t181":181,"t182":182,"t183":183,"t184":184,"t185":185,"t186":186,"t187":187,"t188":188,"t189":189,"t190":190,"t191":191,"t192":192,"t193":193,"t194":194,"t195":195,"t196":196,"t197":197,"t198":198,"t199":199,"t200":200,"t201":201,"t202":202,"t203":203,"t204":204,"t205":205,"t206":206,"t207":207,"t208":208,"t209":209,"t210":210,"t211":211,"t212":212,"t213":213,"t214":214,"t215":215,"t216":216,"t217":217,"t218":218,"t219":219,"t220":220,"t221":221,"t222":222,"t223":223,"t224":224,"t225":225,"t226":226,"t227":227,"t228":228,"t229":229,"t230":230,"t231":231,"t232":232,"t233":233,"t234":234,"t235":235,"t236":236,"t237":237,"t238":238,"t239":239,"t240":240,"t241":241,"t242":242,"t243":243,"t244":244,"t245":245,"t246":246,"t247":247,"t248":248,"t249":249,"t250":250,"t251":251,"t252":252,"t253":253,"t254":254,"t255":255,"t256":256,"t257":257,"t258":258,"t259":259,"t260":260,"t261":261,"t262":262,"t263":263,"t264":264,"t265":265,"t266":266,"t267":267,"t268":268,"t269":269,"t270":270,"t271":271,"t272":272,"t273":273,"t274":274,"t275":275,"t276":276,"t277":277,"t278":278,"t279":279,"t280":280,"t281":281,"t282":282,"t283":283,"t284":284,"t285":285,"t286":286,"t287":287,"t288":288,"t289":289,"t290":290,"t291":291,"t292":292,"t293":293,"t294":294,"t295":295,"t296":296,"t297":297,"t298":298,"t299":299,"email":"m@n.o"}}'),
('identify-escapes', 'identify', '{"type":"identify","userId":"\u00e9\ud83d\ude00\n\"\\\/","traits":{"name":"Jos\u00e9 \t\b\f\r","email":"e\u0040x.com","title":"\u2028\u2029"}}'),
('identify-numbers', 'identify', '{"type":"identify","userId":12345678901234567890,"traits":{"age":-0,"a":1e2,"b":2.5E-3,"c":2147483648,"d":-2147483649,"e":0.1,"f":-1.5e+300,"g":5e-324}}'),
('identify-whitespace', 'identify', '{ "type" : "identify" , "userId" :	"u4" ,
 "traits" : { "email" : "w@s.p" , "tags" : [ 1 , [ 2 ] , { } , [ ] ] } }'),
('identify-literals', 'identify', '{"type":"identify","userId":true,"anonymousId":null,"traits":{"a":false,"b":null,"c":{},"d":[],"email":"l@i.t"}}'),
('identify-duplicates', 'identify', '{"type":"identify","userId":"first","userId":"second","traits":{"email":"d@u.p","email":"d2@u.p"}}'),
('track-dense-properties', 'tracking', '{"type":"track","event":"E","userId":"u5","x.y":1,"properties":{"a":[0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9],"b":[[1],[2],[3],[4]],"c":{"d":[true,false,null]},"email":"p@q.r"}}'),
('track-escapes', 'tracking', '{"type":"track","event":"Ev\u00e9nt \"q\"","userId":"\ud83d\ude00","context":{"traits":{"email":"t\u0040r.ack","userId":"tu"},"sessionId":"s\/1"},"properties":{"k":"\u00e9","n":1.50}}'),
('track-numbers', 'tracking', '{"type":"track","event":12.5,"userId":-0,"anonymousId":1e21,"properties":{"kustomerSessionId":2147483648,"x":1E2}}'),
('track-whitespace', 'tracking', '{ "type" : "track" , "event" : "W" ,
 "context" : { "traits" : { "email" : "w@x.y" } } , "properties" : { "a" : [ 1 , 2 ] } }'),
('page-properties-name', 'tracking', '{"type":"page","anonymousId":"an","properties":{"name":"P\u00e1gina","url":"https://x/y","title":"T"}}'),
('screen-literals', 'tracking', '{"type":"screen","name":null,"userId":false,"properties":{"name":true,"a":{}}}');
-- Properties that meta is written from the text of (json.c's raw path)
-- against the same properties parsed: nesting, repeated keys at every
-- depth, numbers JavaScript prints otherwise, escapes, bytes that are not
-- UTF-8 and lone surrogates (errors, as kustomer_request's 400 bodies:
-- the same message either way).
insert into tree_event values
('track-nested', 'tracking', '{"type":"track","event":"Order Completed","userId":"u6","properties":{"products":[{"id":"p1","price":19.99,"tags":["a","b"],"in_stock":true,"variant":{"size":"M","color":null}},{"id":"p2","price":5,"coupon":null}],"shipping_address":{"street":"1 Main St","city":"Miami","geo":{"lat":25.76,"lng":-80.19}},"gift":false,"notes":null,"empty":{},"none":[],"total":24.99}}'),
('track-numbers-js', 'tracking', '{"type":"track","event":"N","userId":"u7","properties":{"inf":1e400,"ninf":-1e400,"negzero":-0,"negzerofrac":-0.0,"small":1E-7,"tiny":5e-324,"exp":1e2,"expfrac":2.5E+3,"long":0.30000000000000004,"big":123456789012345678901,"bigint":9007199254740993,"e21":1e21,"nested":{"a":[1e400,-0,1.50,1e-6,0.000001,0.0000001],"b":{"c":12345678901234567890}},"arr":[1e3],"arr2":[[0.1e1]]}}'),
('track-duplicates', 'tracking', '{"type":"track","event":"D","userId":"u8","properties":{"a":{"k":1,"k":2,"j":[{"x":1,"x":{"y":2,"y":3}}]},"b":true,"a":{"k":3,"m":{"n":1,"n":[1,2]}},"n":1,"nNum":2,"when":"2024-01-02T03:04:05Z","whenAt":"x"}}'),
('track-escapes-nested', 'tracking', '{"type":"track","event":"U","userId":"u9","properties":{"s":"\u00e9\u0041\/\ud83d\ude00","t":"é✓😀","k\u0065y":1,"u":"\u2028\u2029","v":"\u001f\b\f\n\r\t\"\\","o":{"\u0061":1,"a":2,"q\"":"\u00e9","w":["\/",{"\u00e9":"é"}]},"é":{"ü":"\u00fc"}}}'),
('track-deep', 'tracking', '{"type":"track","event":"Deep","userId":"u10","properties":{"a":' || replace(hex(zeroblob(120)), '00', '[{"k":') || '1' || replace(hex(zeroblob(120)), '00', '}]') || ',"b":' || replace(hex(zeroblob(254)), '00', '[') || replace(hex(zeroblob(254)), '00', ']') || '}}'),
('track-too-deep', 'request', '{"type":"track","event":"Deep","userId":"u11","properties":{"a":' || replace(hex(zeroblob(300)), '00', '[') || replace(hex(zeroblob(300)), '00', ']') || '}}'),
('track-whitespace-nested', 'tracking', '{"type":"track","event":"W","userId":"u12","properties":{ "a" : [ true , false , null , { } , [ ] , { "b" : 1.0 } ] ,' || char(10) || ' "c" : { "d" : "e" } }}'),
('track-bad-utf8', 'request', '{"type":"track","event":"B","userId":"u13","properties":{"a":{"s":"' || cast(x'c3' as text) || '"}}}'),
('track-bad-utf8-overlong', 'request', '{"type":"track","event":"B","userId":"u14","properties":{"a":["' || cast(x'c0af' as text) || '"]}}'),
('track-bad-utf8-key', 'request', '{"type":"track","event":"B","userId":"u15","properties":{"o":{"' || cast(x'ff' as text) || '":1}}}'),
('track-utf8-surrogate', 'request', '{"type":"track","event":"B","userId":"u16","properties":{"o":{"s":"' || cast(x'eda080' as text) || '"}}}'),
('track-lone-surrogate', 'request', '{"type":"track","event":"L","userId":"u17","properties":{"o":{"s":"\ud800"}}}'),
('track-lone-low-surrogate', 'request', '{"type":"track","event":"L","userId":"u18","properties":{"o":["x\udc00"]}}'),
('track-nul-escape', 'request', '{"type":"track","event":"Z","userId":"u19","properties":{"o":{"s":"a\u0000b"}}}'),
('track-long-keys', 'tracking', '{"type":"track","event":"Long Keys","userId":"u21","context.traits.email_of_the_user":"c@d.e","properties.kustomerSessionId":"s-top","traits.email":"t@o.p","properties":{"abcdefghijklmnopqrstuvwxyz.email":{"x":1},"abcdefghijklmnopqrstuvw\u002eq":[1],"abcdefghijklmnopqrsté":2,"abcdefghijklmnopqr st":true,"abcdefghijklmnopqrstuvwxyzabcdefghijAt":"2024-01-01"}}'),
('track-long-keys-raw', 'tracking', '{"type":"track","event":"Raw Keys","userId":"u22","properties":{"abcdefghijklmnopqrsté":2,"abcdefghijklmnopqr st":true,"abcdefghijklmnopqrstuvwxyz.q":1,"abcdefghijklmnopqrstuvwxyzabcdefghijAt":"2024-01-01","abcdefghijklmnop":"x"}}'),
('track-long-quotes', 'tracking', '{"type":"track","event":"Q","userId":"u20","properties":{"o":{"q":"' || replace(hex(zeroblob(300)), '00', '\"') || '","r":"' || replace(hex(zeroblob(700)), '00', 'ab') || '","s":["x\\y",{"t":"' || replace(hex(zeroblob(255)), '00', 'c\"') || '"}]}}}');
create table tree_way(name, fn, settings);
insert into tree_way values
('plain', 'request', '{"apiKey":"k"}'),
('advanced', 'request', '{"apiKey":"k","advancedTransform":true}'),
('identity-email', 'request', '{"apiKey":"k","setIdentityEmail":true,"disableEmailAsTrackingProperty":true}'),
('identify', 'identify', null),
('tracking', 'tracking', null);
-- The same event with a number the scan declines, so that cJSON parses it
-- all: the event's last '}' becomes ',"zz":1.000...}'.
create view tree_check as
  select 'tree-' || e.name || '-' || w.name as name, w.fn, w.settings,
         e.event as lean,
         substr(e.event, 1, length(e.event)-1)
           || ',"zz":1.0000000000000000000000000000000000000000000000000000000000000000000000}' as full,
         e.rowid as i, w.rowid as j
    from tree_event e join tree_way w on w.fn='request' or w.fn=e.fn;
-- rows: 116
select name,
       case fn when 'request' then kustomer_request(lean, settings)
               when 'identify' then kustomer_identify(lean)
               else kustomer_tracking(lean) end,
       case fn when 'request' then kustomer_request(full, settings)
               when 'identify' then kustomer_identify(full)
               else kustomer_tracking(full) end
  from tree_check order by i, j;
-- kustomer_check's parse (transform.c, kustomer_event_parse_check) makes
-- the nested values of properties empty, but those a path names, and keeps
-- of a track event's traits only the ids: its rows for every event above
-- and these, against the full parse's, with and without advancedTransform.
insert into tree_event values
('check-page-name-array', 'check', '{"type":"page","userId":"c1","properties":{"name":["a","b"],"event":{"x":1},"n":{"deep":[1,{"a":[]}]},"o":[[]]}}'),
('check-page-name-escaped', 'check', '{"type":"page","userId":"c2","properties":{"na\u006de":["P q"],"a.b":{"c":1}}}'),
('check-identify-props-email', 'check', '{"type":"identify","userId":"c3","properties":{"email":["x@y.z"],"phone":{"n":"1"},"website":[["w"]],"other":{"a":1}},"traits":{"name":"N"}}'),
('check-identify-escaped-email', 'check', '{"type":"identify","userId":"c4","properties":{"em\u0061il":{"e":"q@r.s"}},"context":{"traits":{"tags":["a",{"b":1}]}}}'),
('check-identify-late-type', 'check', '{"userId":"c5","traits":{"email":"l@t.e","gender":"x","custom":{"aStr":1},"emails":[{"email":3}]},"type":"identify","properties":{"email":{"x":[]}}}'),
('check-track-traits', 'check', '{"type":"track","event":"T","traits":{"userId":["u"],"email":{"e":1},"other":[1]},"context":{"traits":{"id":{"i":1},"x":[2]}},"properties":{"dateAt":"2024-01-01T00:00:00Z","nested":{"at":"x"},"list":[true],"b":false,"nNum":"3"}}'),
('check-track-empty-containers', 'check', '{"type":"track","event":"E","userId":"c6","properties":{"a":{},"b":[],"c":{"d":{}},"e":[[],[]],"f":{"g":null}}}');
-- rows: 73
select 'check-' || e.name || '-' || w.name,
       (select json_group_array(json_array(path, rule, severity, message))
          from kustomer_check(e.event, w.settings)),
       (select json_group_array(json_array(path, rule, severity, message))
          from kustomer_check(substr(e.event, 1, length(e.event)-1)
            || ',"zz":1.0000000000000000000000000000000000000000000000000000000000000000000000}',
            w.settings))
  from tree_event e,
       (select 'plain' as name, null as settings
        union all select 'advanced', '{"advancedTransform":true}') w
 where e.name not like '%too-deep%'
 order by e.rowid, w.name;

/// @brief Config parsing: presets, overrides, and one clear error naming the key.
#include <QtTest/QtTest>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <atomic>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/config/config.h"
#include "core/util/claim.h"
#include "core/util/error.h"
#include "core/util/files.h"
#include "core/util/index_list.h"

using namespace mst;
using json = nlohmann::json;

class TestConfig : public QObject {
  Q_OBJECT

 private slots:
  void filesAreReplacedWhole() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("a.json").toStdString();
    writeTextAtomically(path, "first\n");
    writeTextAtomically(path, "second\n");
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    QCOMPARE(text, std::string("second\n"));
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{"a.json"});  // no leftovers
    // Two processes never share a temporary name; it sits beside the target.
    const std::string tmp = temporarySibling(path);
    QVERIFY(tmp.rfind(path + ".tmp.", 0) == 0);
    QVERIFY(tmp.find(std::to_string(QCoreApplication::applicationPid())) != std::string::npos);
    // A folder that does not exist: one error naming the file, nothing written.
    const std::string missing = dir.filePath("no/such/b.json").toStdString();
    try {
      writeTextAtomically(missing, "x");
      QFAIL("wrote into a missing folder");
    } catch (const MstError& e) {
      QVERIFY2(std::string(e.what()).find(missing) != std::string::npos, e.what());
    }
  }

  void fileLocksExcludeEachOther() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("lock").toStdString();
    std::atomic<bool> held{false}, released{false};
    std::thread holder([&] {
      ScopedFileLock lock(path);
      held = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      released = true;
    });
    while (!held) std::this_thread::yield();
    {
      ScopedFileLock lock(path);  // waits for the holder's scope to end
      QVERIFY(released);
    }
    holder.join();
  }

  void claimsHaveOneHolder() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("claim").toStdString();
    auto first = Claim::tryTake(path);
    QVERIFY(first);
    QVERIFY(claimIsLive(path));
    // Another taker in this process (another sweep, another device thread) is refused.
    QVERIFY(!Claim::tryTake(path));
    first.reset();
    QVERIFY(!std::filesystem::exists(path));  // released: the file is gone
    QVERIFY(!claimIsLive(path));
    auto second = Claim::tryTake(path);
    QVERIFY(second);
  }

  void claimsOfGoneHoldersAreTakenOver() {
    namespace fs = std::filesystem;
    QTemporaryDir dir;
    const std::string path = dir.filePath("claim").toStdString();
    const auto write = [&](const std::string& holder) { std::ofstream(path) << holder << "\n"; };
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    // A process of this host that has exited.
    const pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, nullptr, 0);
    write(std::string(host) + " " + std::to_string(child) + " 1");
    QVERIFY(!claimIsLive(path));
    auto claim = Claim::tryTake(path);
    QVERIFY(claim);
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    QCOMPARE(line, claim->holder());
    claim.reset();

    // A running process whose pid a gone holder had: its start time differs, so the claim is
    // not live (claims without a start time, from before it was recorded, judge by pid alone).
    const std::string me = std::string(host) + " " + std::to_string(getpid()) + " 7";
    std::string own_start;
    {
      std::ifstream stat("/proc/self/stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      std::istringstream fields(text.substr(text.rfind(')') + 1));
      for (int i = 3; i <= 22; ++i) fields >> own_start;
    }
    QVERIFY(std::stoull(own_start) > 0);
    write(me + " " + own_start);
    QVERIFY(claimIsLive(path));
    write(me + " " + std::to_string(std::stoull(own_start) + 1));
    QVERIFY(!claimIsLive(path));
    write(me);
    QVERIFY(claimIsLive(path));
    // ...and the claims this build writes carry it.
    fs::remove(path);
    claim = Claim::tryTake(path);
    QVERIFY(claim);
    const std::string& held = claim->holder();  // "<host> <pid> <serial> <start>"
    QVERIFY(held.rfind(std::string(host) + " " + std::to_string(getpid()) + " ", 0) == 0);
    QVERIFY(held.size() > own_start.size() &&
            held.compare(held.size() - own_start.size() - 1, std::string::npos, " " + own_start) == 0);
    claim.reset();

    // Another machine: live while its heartbeat is fresh, taken over once it is older.
    write("elsewhere-host 4242 1");
    QVERIFY(claimIsLive(path));
    QVERIFY(!Claim::tryTake(path));
    fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::hours(1));
    QVERIFY(!claimIsLive(path));
    claim = Claim::tryTake(path);
    QVERIFY(claim);

    // Hosts whose clocks are wrong by hours judge another host's heartbeat alike: its age is
    // read by the file system's clock, which stamped it.
    claim.reset();
    for (auto skew : {std::chrono::hours(2), -std::chrono::hours(2)}) {
      setClaimClockSkewForTesting(skew);
      write("elsewhere-host 4243 1");
      QVERIFY(claimIsLive(path));
      QVERIFY(!Claim::tryTake(path));
      fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::hours(1));
      QVERIFY(!claimIsLive(path));
      QVERIFY(QString::fromStdString(claimHolder(path)).contains(QRegularExpression(" 3[56]\\d\\d s ago")));
    }
    setClaimClockSkewForTesting(std::chrono::seconds(0));
    const auto litter = [&] {
      int n = 0;
      for (const auto& entry : fs::directory_iterator(dir.path().toStdString()))
        n += entry.path().filename().string().rfind(".mst-clock.", 0) == 0;
      return n;
    };
    QCOMPARE(litter(), 0);  // the probes are removed
    claim = Claim::tryTake(path);
    QVERIFY(claim);

    // A holder judged gone and replaced does not remove its successor's claim on release.
    write("elsewhere-host 4242 2");
    claim.reset();
    QVERIFY(fs::exists(path));
  }

  void heldClaimsKeepTheirHeartbeat() {
    namespace fs = std::filesystem;
    QTemporaryDir dir;
    const std::string path = dir.filePath("claim").toStdString();
    auto claim = Claim::tryTake(path, Claim::kStaleAfter, std::chrono::milliseconds(20));
    QVERIFY(claim);
    const auto old = fs::file_time_type::clock::now() - std::chrono::hours(1);
    fs::last_write_time(path, old);
    QTRY_VERIFY_WITH_TIMEOUT(fs::last_write_time(path) > old + std::chrono::minutes(59), 5000);
  }

  void indexListsAsPeopleTypeThem() {
    // --images, --k and the Inspector's image field share one parser.
    QCOMPARE(parseIndexList("0-3,8", "--images"), (std::vector<int64_t>{0, 1, 2, 3, 8}));
    QCOMPARE(parseIndexList(" 5 , 2-2 ,", "Images"), (std::vector<int64_t>{5, 2}));
    for (const char* bad : {"", ",", "a", "3-1", "-2", "1-", "1-2-3", "2x", "1.5"}) {
      try {
        parseIndexList(bad, "--images");
        QFAIL(qPrintable(QString("accepted '%1'").arg(bad)));
      } catch (const MstError& e) {
        QVERIFY2(QString(e.what()).startsWith("--images "), e.what());
      }
    }
    // A cap is checked before a range is expanded: a typo cannot allocate 10^15 indices.
    QVERIFY_THROWS_EXCEPTION(MstError, parseIndexList("0-999999999999999", "--images"));
    QCOMPARE(parseIndexList("0-255", "Images", 256).size(), size_t{256});
    QVERIFY_THROWS_EXCEPTION(MstError, parseIndexList("0-255,300", "Images", 256));
  }

  void defaultsRoundTrip() {
    Config c;
    auto j = configToJson(c);
    auto back = configFromJson(j);
    QCOMPARE(configToJson(back), j);
  }

  void presetThenExplicitKeys() {
    auto c = configFromJson(json{{"model", {{"preset", "deit_s16"}, {"depth", 3}}},
                                 {"crops", {{"global_size", 224}, {"local_size", 96}}}});
    QCOMPARE(c.model.dim, int64_t{384});
    QCOMPARE(c.model.depth, int64_t{3});
    QCOMPARE(c.model.out_dim, int64_t{65536});
    // Dotted spelling is accepted too.
    auto d = configFromJson(json{{"masking.p", 0.25}});
    QCOMPARE(d.masking.p, 0.25);
  }

  void fusedKernelSwitchesTakeAutoOnOffAndTheirOldBools() {
    // train.fused_norm / fused_augment were bools before they had "auto": configs and
    // checkpoints written then keep their meaning.
    QCOMPARE(Config().train.fused_norm, std::string("auto"));
    QCOMPARE(Config().train.fused_augment, std::string("auto"));
    auto old = configFromJson(json{{"train", {{"fused_norm", true}, {"fused_augment", false}}}});
    QCOMPARE(old.train.fused_norm, std::string("on"));
    QCOMPARE(old.train.fused_augment, std::string("off"));
    json j = json::object();
    applyOverride(j, "train.fused_norm=false");
    applyOverride(j, "train.fused_augment=on");
    auto c = configFromJson(j);
    QCOMPARE(c.train.fused_norm, std::string("off"));
    QCOMPARE(c.train.fused_augment, std::string("on"));
    QCOMPARE(configToJson(c)["train"]["fused_norm"], json("off"));  // written as the string
  }

  void overrides() {
    json j = json::object();
    applyOverride(j, "masking.num=4");
    applyOverride(j, "masking.strategy=random");
    applyOverride(j, "train.probe_images=[1,2]");
    auto c = configFromJson(j);
    QCOMPARE(c.masking.num, int64_t{4});
    QCOMPARE(c.masking.strategy, std::string("random"));
    QCOMPARE(c.train.probe_images, (std::vector<int64_t>{1, 2}));
  }

  void badValuesNameTheKey_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("key");
    QTest::newRow("unknown key") << R"({"masking": {"q": 1}})" << "masking.q";
    QTest::newRow("wrong type") << R"({"train": {"epochs": "many"}})" << "train.epochs";
    QTest::newRow("p > 1") << R"({"masking": {"p": 1.5}})" << "masking.p";
    QTest::newRow("p < 0") << R"({"masking": {"p": -0.1}})" << "masking.p";
    QTest::newRow("num < 1") << R"({"masking": {"num": 0}})" << "masking.num";
    QTest::newRow("strategy") << R"({"masking": {"strategy": "often"}})" << "masking.strategy";
    QTest::newRow("batch < 1") << R"({"train": {"batch_size": 0}})" << "train.batch_size";
    QTest::newRow("heads ∤ dim") << R"({"model": {"dim": 100, "heads": 3}})" << "model.heads";
    QTest::newRow("size % patch") << R"({"model": {"image_size": 30}})" << "model.image_size";
    QTest::newRow("local > global")
        << R"({"crops": {"local_size": 32, "global_size": 28}})" << "crops.local_size";
    QTest::newRow("format") << R"({"data": {"format": "tfrecord"}})" << "data.format";
    QTest::newRow("preset") << R"({"model": {"preset": "vit_huge"}})" << "model.preset";
    QTest::newRow("channels") << R"({"model": {"channels": 2}})" << "model.channels";
    QTest::newRow("gelu") << R"({"model": {"gelu": "relu"}})" << "model.gelu";
    QTest::newRow("recompute") << R"({"train": {"recompute_gelu": "yes"}})" << "train.recompute_gelu";
    QTest::newRow("fused norm") << R"({"train": {"fused_norm": "yes"}})" << "train.fused_norm";
    QTest::newRow("fused augment") << R"({"train": {"fused_augment": 1}})" << "train.fused_augment";
    QTest::newRow("fused decoder") << R"({"train": {"fused_decoder": "always"}})" << "train.fused_decoder";
    QTest::newRow("fused optimizer") << R"({"train": {"fused_optimizer": "fast"}})" << "train.fused_optimizer";
    QTest::newRow("attention kernel")
        << R"({"train": {"attention_kernel": "fa3"}})" << "train.attention_kernel";
    QTest::newRow("short attention kernel")
        << R"({"train": {"attention_kernel_short": "fast"}})" << "train.attention_kernel_short";
    QTest::newRow("num > patches") << R"({"masking": {"num": 50}})" << "masking.num";
    QTest::newRow("mean without std") << R"({"data": {"mean": [0.5]}})" << "key data.mean";
    QTest::newRow("mean and std differ")
        << R"({"data": {"mean": [0.5], "std": [0.2, 0.3]}})" << "key data.std";
    QTest::newRow("k > subset") << R"({"eval": {"k": 50, "subset": 10}})" << "eval.k";
  }

  void maskingNumIsBoundedByAGlobalCropsPatches() {
    // Eq. 5: floor(n/num) of the n = (28/4)^2 = 49 patches are candidates; num = 50 masks nothing.
    Config c;
    QCOMPARE(checkConfigValue(c, "masking.num", 49), std::string());
    const auto why = QString::fromStdString(checkConfigValue(c, "masking.num", 50));
    QVERIFY2(why.startsWith("config key masking.num") && why.contains("49"), qPrintable(why));
    // A larger global crop has more patches; random and none masking do not use num.
    QCOMPARE(checkConfigValue(configFromJson({{"crops", {{"global_size", 56}}},
                                              {"model", {{"image_size", 56}}}}),
                              "masking.num", 196),
             std::string());
    c.masking.strategy = "random";
    QCOMPARE(checkConfigValue(c, "masking.num", 1000), std::string());
    // The form's check of another field names the key that breaks the rule.
    c.masking.num = 1000;
    QVERIFY(QString::fromStdString(checkConfigValue(c, "masking.strategy", "attention_high"))
                .contains("masking.num"));
  }

  void overrideBeyondANumberNamesTheKey() {
    json j = json::object();
    try {
      applyOverride(j, "optim.lr=1e400");
      QFAIL("no error");
    } catch (const MstError& e) {
      QVERIFY2(QString(e.what()).contains("config key optim.lr"), e.what());
    }
  }

  void integersOutOfRangeAreRejected_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("key");
    QTest::addColumn<QString>("detail");
    // Found by fuzz/fuzz_config.cpp: 1e300 was cast to int64 (undefined behaviour); 2^64 - 1
    // wrapped to -1 and 2^32 + 1 loader threads silently became 1.
    QTest::newRow("float beyond int64") << R"({"train": {"batch_size": 1e300}})"
                                        << "train.batch_size" << "64-bit range";
    QTest::newRow("unsigned beyond int64") << R"({"train": {"seed": 18446744073709551615}})"
                                           << "train.seed" << "64-bit range";
    QTest::newRow("beyond int") << R"({"data": {"workers": 4294967297}})" << "data.workers"
                                << "32-bit range";
  }
  void integersOutOfRangeAreRejected() {
    QFETCH(QString, text);
    QFETCH(QString, key);
    QFETCH(QString, detail);
    try {
      configFromJson(json::parse(text.toStdString()), "exp.json");
      QFAIL("no error");
    } catch (const MstError& e) {
      const QString message = e.what();
      QVERIFY2(message.contains(key) && message.contains(detail), qPrintable(message));
    }
  }
  void badValuesNameTheKey() {
    QFETCH(QString, text);
    QFETCH(QString, key);
    try {
      configFromJson(json::parse(text.toStdString()), "exp.json");
      QFAIL("no error");
    } catch (const MstError& e) {
      QString message = e.what();
      QVERIFY2(message.contains(key), qPrintable(message));
      QVERIFY2(!message.contains('\n'), qPrintable(message));
    }
  }

  void overrideWithInvalidUtf8NamesTheKey() {
    // Found by fuzz/fuzz_config.cpp: a Latin-1 --set value was accepted, and the run then failed
    // with a bare json type_error when it wrote config.json or its first checkpoint.
    json j = json::object();
    applyOverride(j, "data.path=/data/caf\xe9");
    try {
      configFromJson(j, "--set");
      QFAIL("no error");
    } catch (const MstError& e) {
      QVERIFY2(QString(e.what()).contains("data.path"), e.what());
      QVERIFY2(QString(e.what()).contains("UTF-8"), e.what());
    }
    applyOverride(j, "data.path=/data/caf\xc3\xa9");
    QCOMPARE(configFromJson(j).data.path, std::string("/data/caf\xc3\xa9"));
  }

  void fieldChecksForForms() {
    Config c;
    QCOMPARE(checkConfigValue(c, "masking.p", 0.2), std::string());
    QVERIFY(QString::fromStdString(checkConfigValue(c, "masking.p", 1.5)).contains("masking.p"));
    QVERIFY(QString::fromStdString(checkConfigValue(c, "model.heads", 5)).contains("model.heads"));
    QVERIFY(QString::fromStdString(checkConfigValue(c, "train.epochs", "x")).contains("number"));
    QVERIFY(!checkConfigValue(c, "no.such", 1).empty());
    QCOMPARE(configValue(c, "masking.num").get<int64_t>(), c.masking.num);
    auto keys = configKeys();
    QVERIFY(keys.size() > 60);
    for (const auto& k : keys) QVERIFY2(!k.help.empty(), k.key.c_str());
  }

  void badFileNamesTheFile() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("broken.json").toStdString();
    std::ofstream(path) << "{ \"train\": ";
    try {
      loadJsonFile(path);
      QFAIL("no error");
    } catch (const MstError& e) {
      QVERIFY(QString(e.what()).contains("broken.json"));
    }
    QVERIFY_THROWS_EXCEPTION(MstError, loadJsonFile(dir.filePath("missing.json").toStdString()));
    for (const auto& [name, text] : {std::pair<std::string, std::string>{"folder", ""},
                                     {"huge.json", R"({"optim": {"lr": 1e400}})"}}) {
      const std::string file = dir.filePath(QString::fromStdString(name)).toStdString();
      if (text.empty())
        std::filesystem::create_directory(file);
      else
        std::ofstream(file) << text;
      try {
        loadJsonFile(file);
        QFAIL("no error");
      } catch (const MstError& e) {
        QVERIFY2(QString(e.what()).contains(QString::fromStdString(file)), e.what());
        if (text.empty()) QVERIFY2(QString(e.what()).contains("directory"), e.what());
      }
    }
  }

  void experimentsParse_data() {
    QTest::addColumn<QString>("file");
    QDir dir(QString(MST_SOURCE_DIR) + "/experiments");
    for (const auto& name : dir.entryList({"*.json"}, QDir::Files))
      QTest::newRow(qPrintable(name)) << dir.filePath(name);
    QVERIFY(dir.entryList({"*.json"}).size() >= 5);
  }
  void experimentsParse() {
    QFETCH(QString, file);
    auto j = loadJsonFile(file.toStdString());
    j.erase("sweep");  // read by `mst sweep`, not part of the config
    auto c = configFromJson(j, file.toStdString());
    QVERIFY(c.train.batch_size >= 1);
  }

  void documentationIsInSync() {
    // docs/config.md embeds the generated key table: regenerate with `mst config --keys`.
    std::ifstream in(std::string(MST_SOURCE_DIR) + "/docs/config.md");
    std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    QVERIFY2(doc.find(configKeysMarkdown()) != std::string::npos,
             "docs/config.md is out of date: run scripts/update_docs.sh");
  }
};

QTEST_APPLESS_MAIN(TestConfig)
#include "test_config.moc"

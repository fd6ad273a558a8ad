"""respack's Tencent Cloud API 3.0 endpoint, driven by the official Python SDK.

Run by crates/tc-api/tests/it/sdk.rs (through `cargo xtask test`), which starts the server on
port 0 over a fresh database and passes what it created in RESPACK_SDK_FIXTURE (JSON).
"""

import hashlib
import hmac
import json
import os
import threading
import time
import unittest
import urllib.request
from datetime import datetime, timezone
from unittest import mock

from tencentcloud.billing.v20180709 import billing_client, models
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

FIXTURE = json.loads(os.environ["RESPACK_SDK_FIXTURE"])
ENDPOINT = FIXTURE["Endpoint"]
KEYS = FIXTURE["Keys"]
PACKS = FIXTURE["Packs"]
MONTH = FIXTURE["Month"]

# The server allows 5 requests per second per action and SecretId; the tests pace themselves
# below that, except the one that checks the limit.
_last_call = {}
_pace_lock = threading.Lock()


def pace(secret_id, action):
    with _pace_lock:
        key = (secret_id, action)
        wait = _last_call.get(key, 0) + 0.25 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        _last_call[key] = time.monotonic()


def profile(method="POST"):
    http = HttpProfile(endpoint=ENDPOINT, reqMethod=method)
    http.scheme = "http"
    http.protocol = "http"
    return ClientProfile(httpProfile=http)


def billing(key="member", secret_key=None, method="POST"):
    cred = credential.Credential(KEYS[key]["SecretId"], secret_key or KEYS[key]["SecretKey"])
    return billing_client.BillingClient(cred, "", profile(method))


def common(key="member", version="2018-07-09"):
    cred = credential.Credential(KEYS[key]["SecretId"], KEYS[key]["SecretKey"])
    return CommonClient("billing", version, cred, "", profile())


def call(client, action, request, key="member"):
    pace(client.credential.secretId, action)
    return getattr(client, action)(request)


def call_common(client, action, params):
    pace(client.credential.secretId, action)
    return client.call_json(action, params)["Response"]


def request(model, **fields):
    req = model()
    req.from_json_string(json.dumps(fields))
    return req


class ApiTestCase(unittest.TestCase):
    def assertError(self, code, function, *args, message_part=None, **kwargs):
        with self.assertRaises(TencentCloudSDKException) as raised:
            function(*args, **kwargs)
        self.assertEqual(raised.exception.code, code, raised.exception.message)
        self.assertTrue(raised.exception.requestId, "every error carries a RequestId")
        if message_part:
            self.assertIn(message_part, raised.exception.message)
        return raised.exception

    def balance_cents(self, key="member"):
        return call(billing(key), "DescribeAccountBalance", models.DescribeAccountBalanceRequest()).Balance


class T01BillSummary(ApiTestCase):
    def summary(self, key="member", **fields):
        fields.setdefault("Offset", 0)
        fields.setdefault("Limit", 100)
        fields.setdefault("Month", MONTH)
        return call(billing(key), "DescribeBillResourceSummary", request(models.DescribeBillResourceSummaryRequest, **fields))

    def summary_when_ready(self, key="member", **fields):
        deadline = time.monotonic() + 30
        while True:
            try:
                return self.summary(key, **fields)
            except TencentCloudSDKException as error:
                self.assertEqual(error.code, "FailedOperation.SummaryDataNotReady")
                self.assertLess(time.monotonic(), deadline, "the summary was never built")
                time.sleep(0.1)

    def test_not_ready_then_every_field_paging_and_filters(self):
        # Never built: the first call starts the build and says so.
        error = self.assertError("FailedOperation.SummaryDataNotReady", self.summary)
        self.assertIn(MONTH, error.message)
        response = self.summary_when_ready(NeedRecordNum=1)
        rows_expected = FIXTURE["MemberSummaryRows"]
        self.assertEqual(response.Total, rows_expected, "one row per pack bought this month")
        self.assertTrue(response.RequestId)
        rows = response.ResourceSummarySet
        self.assertEqual(len(rows), rows_expected)
        row = next(r for r in rows if r.ResourceId == PACKS["Renewable"])
        expected = {
            "ActionTypeName": "New yearly/monthly subscription",
            "BusinessCode": "p_mps",
            "ProductCode": "sp_mps_general_transcoding",
            "PayModeName": "Monthly Subscription",
            "ProjectName": "default",
            "RegionName": "South China (Guangzhou)",
            "RegionId": 1,
            "ZoneName": "Guangzhou Zone 3",
            "ResourceName": "Tagged monthly pack",
            "TotalCost": "30.00000000",
            "RealTotalCost": "30.00000000",
            "CashPayAmount": "30.00000000",
            "VoucherPayAmount": "0.00000000",
            "IncentivePayAmount": "0.00000000",
            "TransferPayAmount": "0.00000000",
            "Discount": "1",
            "ReduceType": "discount",
            "OwnerUin": FIXTURE["MemberUin"],
            "PayerUin": FIXTURE["MemberUin"],
            "OperateUin": FIXTURE["MemberUin"],
            "BillMonth": MONTH + "-01 00:00:00",
            "InstanceType": "-",
            "ExtendField1": "-",
            "ExtendField5": "-",
            "OriginalCostWithRI": "0.00000000",
            "OriginalCostWithSP": "0.00000000",
            "SPDeduction": "0.00000000",
        }
        for field, value in expected.items():
            self.assertEqual(getattr(row, field), value, field)
        self.assertNotEqual(row.OrderId, "-")
        for field in ("PayTime", "FeeBeginTime", "FeeEndTime"):
            datetime.strptime(getattr(row, field), "%Y-%m-%d %H:%M:%S")
        self.assertTrue(row.ConfigDesc.startswith("Period decrement"))
        self.assertEqual([(t.TagKey, t.TagValue) for t in row.Tags], [("team", "media")])
        self.assertTrue(row.BusinessCodeName and row.ProductCodeName)

        # Total only with NeedRecordNum = 1.
        self.assertIsNone(self.summary(NeedRecordNum=0).Total)
        self.assertIsNone(self.summary().Total)

        # Paging: pages of 2 add up to the whole list, in the same order.
        seen = []
        for offset in (0, 2, 4, 6):
            page = self.summary(Offset=offset, Limit=2, NeedRecordNum=1)
            self.assertEqual(page.Total, rows_expected)
            seen.extend(r.ResourceId for r in page.ResourceSummarySet)
        self.assertEqual(seen, [r.ResourceId for r in rows])

        # Filters.
        self.assertEqual(self.summary(ResourceId=PACKS["Total"], NeedRecordNum=1).Total, 1)
        self.assertEqual(self.summary(ActionType="New yearly/monthly subscription", NeedRecordNum=1).Total, rows_expected)
        self.assertEqual(self.summary(ActionType="Daily settlement", NeedRecordNum=1).Total, 0)
        self.assertEqual(self.summary(PayMode="prePay", NeedRecordNum=1).Total, rows_expected)
        self.assertEqual(self.summary(PayMode="postPay", NeedRecordNum=1).Total, 0)
        self.assertEqual(self.summary(BusinessCode="p_mps", NeedRecordNum=1).Total, rows_expected)
        self.assertEqual(self.summary(BusinessCode="p_cls", NeedRecordNum=1).Total, 0)
        # A key alone: the resources with no value under it (the seed's TagValue rule).
        self.assertEqual(self.summary(TagKey="team", NeedRecordNum=1).Total, rows_expected - 1)
        self.assertEqual(self.summary(TagKey="team", TagValue="media", NeedRecordNum=1).Total, 1)
        self.assertEqual(self.summary(TagKey="team", TagValue="ops", NeedRecordNum=1).Total, 0)
        self.assertEqual(self.summary(PeriodType="byPayTime", NeedRecordNum=1).Total, rows_expected)

        # Tenancy: the organization admin reads its member's bills with PayerUin; nothing else.
        self.assertEqual(self.summary("org", PayerUin=FIXTURE["MemberUin"], NeedRecordNum=1).Total, rows_expected)
        self.assertEqual(self.summary("org", NeedRecordNum=1).Total, 0, "the organization's own bills")
        self.assertError("AuthFailure.UnauthorizedOperation", self.summary, "org", PayerUin=FIXTURE["StrangerUin"])
        self.assertError("AuthFailure.UnauthorizedOperation", self.summary, "member", PayerUin=FIXTURE["OrgUin"])
        self.assertError("AuthFailure.UnauthorizedOperation", self.summary, "stranger", PayerUin=FIXTURE["MemberUin"])
        self.assertEqual(self.summary("stranger", NeedRecordNum=1).Total, FIXTURE["StrangerSummaryRows"])

        # Bad input, each named.
        self.assertError("InvalidParameterValue", self.summary, Limit=1001)
        self.assertError("InvalidParameterValue", self.summary, Limit=0)
        self.assertError("InvalidParameterValue", self.summary, Offset=-1)
        self.assertError("InvalidParameterValue", self.summary, Month="2019-02", message_part="2019-03")
        self.assertError("InvalidParameterValue", self.summary, Month="2026-13")
        self.assertError("InvalidParameterValue", self.summary, Month="2999-01", message_part="not begun")
        self.assertError("InvalidParameterValue", self.summary, ActionType="Lunch")
        self.assertError("InvalidParameterValue", self.summary, PayMode="later")
        self.assertError("InvalidParameterValue", self.summary, NeedRecordNum=2)
        self.assertError("InvalidParameterValue", self.summary, PeriodType="byTheWay")
        self.assertError("MissingParameter", self.summary, TagValue="media")
        params = {"Offset": 0, "Limit": 10}
        self.assertError("MissingParameter", call_common, common(), "DescribeBillResourceSummary", params)


    def test_period_type_by_used_time(self):
        # A pack paid last month whose fee period begins this month.
        planned = PACKS["Planned"]
        by_pay = self.summary_when_ready("planner", NeedRecordNum=1)
        self.assertEqual(by_pay.Total, 0, "nothing was paid this month")
        by_use = self.summary_when_ready("planner", NeedRecordNum=1, PeriodType="byUsedTime")
        self.assertEqual([row.ResourceId for row in by_use.ResourceSummarySet], [planned])
        self.assertEqual(by_use.Total, 1)
        self.assertEqual(by_use.ResourceSummarySet[0].BillMonth, MONTH + "-01 00:00:00")
        paid = self.summary_when_ready("planner", Month=FIXTURE["PaidMonth"], NeedRecordNum=1, PeriodType="byPayTime")
        self.assertEqual([row.ResourceId for row in paid.ResourceSummarySet], [planned])
        self.assertEqual(paid.ResourceSummarySet[0].TotalCost, "10.00000000")
        used_then = self.summary_when_ready("planner", Month=FIXTURE["PaidMonth"], NeedRecordNum=1, PeriodType="byUsedTime")
        self.assertEqual(used_then.Total, 0, "its use begins this month")


class T02Balance(ApiTestCase):
    def test_balance_in_cents(self):
        response = call(billing(), "DescribeAccountBalance", models.DescribeAccountBalanceRequest())
        self.assertEqual(response.Uin, int(FIXTURE["MemberUin"]))
        self.assertIsInstance(response.Balance, int)
        self.assertEqual(response.RealBalance, float(response.Balance))
        self.assertEqual(response.CashAccountBalance, float(response.Balance))
        self.assertEqual(response.OweAmount, 0)
        self.assertEqual(response.FreezeAmount, 0)
        self.assertFalse(response.IsAllowArrears)
        # The GET protocol (query string) answers the same.
        get = call(billing(method="GET"), "DescribeAccountBalance", models.DescribeAccountBalanceRequest())
        self.assertEqual(get.Balance, response.Balance)

    def test_unpaid_overage_is_owed(self):
        # The fixture's debtor had 0.50 for 0.75 of overage: settlement took it all, 0.25 is owed.
        response = call(billing("debtor"), "DescribeAccountBalance", models.DescribeAccountBalanceRequest())
        self.assertEqual(response.Balance, 0)
        self.assertEqual(response.RealBalance, 0)
        self.assertEqual(response.OweAmount, 25)
        self.assertFalse(response.IsAllowArrears)


class T03Renewals(ApiTestCase):
    def describe(self, key="member", **fields):
        return call(billing(key), "DescribeRenewInstances", request(models.DescribeRenewInstancesRequest, **fields))

    def test_describe_renew_instances_pages_and_filters(self):
        everything = self.describe()
        ids = [i.InstanceId for i in everything.InstanceList]
        self.assertEqual(set(ids), {PACKS[k] for k in ("Renewable", "Refundable", "Total", "Old", "Spare")})
        self.assertEqual(everything.NextToken, "")
        instance = next(i for i in everything.InstanceList if i.InstanceId == PACKS["Renewable"])
        self.assertEqual(instance.ProductCode, "p_mps")
        self.assertEqual(instance.SubProductCode, "sp_mps_general_transcoding")
        self.assertEqual(instance.RegionCode, "ap-guangzhou")
        self.assertEqual(instance.RenewFlag, "NOTIFY_AND_MANUAL_RENEW")
        self.assertEqual(instance.RenewPeriodUnit, "m")
        self.assertEqual(instance.InstanceName, "Tagged monthly pack")
        datetime.strptime(instance.ExpireTime, "%Y-%m-%d %H:%M:%S")
        expiries = [i.ExpireTime for i in everything.InstanceList]
        self.assertEqual(expiries, sorted(expiries))

        pages, token = [], None
        while True:
            fields = {"MaxResults": 2}
            if token:
                fields["NextToken"] = token
            page = self.describe(**fields)
            pages.extend(i.InstanceId for i in page.InstanceList)
            token = page.NextToken
            if not token:
                break
        self.assertEqual(pages, ids)
        self.assertEqual(
            [i.InstanceId for i in self.describe(Reverse=True).InstanceList], list(reversed(ids)))
        auto = self.describe(RenewFlagList=["NOTIFY_AND_AUTO_RENEW"])
        self.assertEqual({i.InstanceId for i in auto.InstanceList}, {PACKS["Old"], PACKS["Spare"]})
        one = self.describe(InstanceIdList=[PACKS["Total"]])
        self.assertEqual([i.InstanceId for i in one.InstanceList], [PACKS["Total"]])
        self.assertEqual(self.describe(ExpireTimeStart="2999-01-01 00:00:00").InstanceList, [])
        self.assertError("InvalidParameterValue", self.describe, RenewFlagList=["SOMETIMES"])
        self.assertError("InvalidParameterValue", self.describe, MaxResults=101)
        self.assertError("InvalidParameterValue", self.describe, NextToken="x")
        self.assertError("InvalidParameterValue", self.describe, ExpireTimeStart="yesterday")
        self.assertEqual(self.describe("stranger").InstanceList[0].InstanceId, PACKS["Stranger"])

    def test_set_renewal(self):
        def set_renewal(key="member", **fields):
            return call(billing(key), "SetRenewal", request(models.SetRenewalRequest, **fields))

        response = set_renewal(InstanceId=PACKS["Spare"], RenewFlag="NOTIFY_AND_AUTO_RENEW", RenewPeriod="2",
                               RenewPeriodUnit="m", ProductCode="p_mps", RegionCode="ap-guangzhou")
        self.assertEqual(response.InstanceList[0].InstanceId, PACKS["Spare"])
        instance = self.describe(InstanceIdList=[PACKS["Spare"]]).InstanceList[0]
        self.assertEqual((instance.RenewFlag, instance.RenewPeriod), ("NOTIFY_AND_AUTO_RENEW", 2))
        set_renewal(InstanceId=PACKS["Spare"], RenewFlag="DISABLE_NOTIFY_AND_MANUAL_RENEW")
        instance = self.describe(InstanceIdList=[PACKS["Spare"]]).InstanceList[0]
        self.assertEqual((instance.RenewFlag, instance.RenewPeriod), ("DISABLE_NOTIFY_AND_MANUAL_RENEW", 0))
        self.assertError("InvalidParameterValue", set_renewal, InstanceId=PACKS["Spare"], RenewFlag="MAYBE")
        self.assertError("MissingParameter", set_renewal, InstanceId=PACKS["Spare"], RenewFlag="NOTIFY_AND_AUTO_RENEW")
        self.assertError("MissingParameter", set_renewal, RenewFlag="NOTIFY_AND_MANUAL_RENEW")
        self.assertError("InvalidParameterValue", set_renewal, InstanceId=PACKS["Spare"],
                         RenewFlag="NOTIFY_AND_MANUAL_RENEW", RenewPeriodUnit="y")
        self.assertError("InvalidParameterValue", set_renewal, InstanceId=PACKS["Spare"],
                         RenewFlag="NOTIFY_AND_MANUAL_RENEW", ProductCode="p_cls")
        # Another account's pack does not exist for this key.
        self.assertError("ResourceNotFound", set_renewal, InstanceId=PACKS["Stranger"],
                         RenewFlag="NOTIFY_AND_MANUAL_RENEW")

    def test_renew_instance_is_idempotent_per_client_token(self):
        def renew(key="member", **fields):
            return call(billing(key), "RenewInstance", request(models.RenewInstanceRequest, **fields))

        before = self.balance_cents()
        first = renew(InstanceId=PACKS["Renewable"], Period=2, PeriodUnit="m", ClientToken="renew-sdk-1",
                      ProductCode="p_mps", SubProductCode="sp_mps_general_transcoding", RegionCode="ap-guangzhou")
        self.assertEqual(len(first.OrderIdList), 1)
        retry = renew(InstanceId=PACKS["Renewable"], Period=2, PeriodUnit="m", ClientToken="renew-sdk-1")
        self.assertEqual(retry.OrderIdList, first.OrderIdList)
        self.assertEqual(self.balance_cents(), before - 2000, "charged once: 2 periods of 10.00")
        self.assertError("InvalidParameterValue", renew, InstanceId=PACKS["Renewable"], Period=1,
                         ClientToken="renew-sdk-1", message_part="ClientToken")
        self.assertError("FailedOperation", renew, InstanceId=PACKS["Total"], Period=1,
                         message_part="cannot be renewed")
        self.assertError("FailedOperation.BalanceInsufficient", renew, "stranger", InstanceId=PACKS["Stranger"],
                         Period=5)
        self.assertError("InvalidParameterValue", renew, InstanceId=PACKS["Renewable"], Period=0)
        self.assertError("MissingParameter", renew, InstanceId=PACKS["Renewable"])
        self.assertError("InvalidParameterValue", renew, InstanceId=PACKS["Renewable"], Period=1, PeriodUnit="d")
        self.assertError("ResourceNotFound", renew, InstanceId=PACKS["Stranger"], Period=1)
        self.assertError("ResourceNotFound", renew, InstanceId="rp-doesnotexist", Period=1)

    def test_refund_instance(self):
        def refund(**fields):
            return call(billing(), "RefundInstance", request(models.RefundInstanceRequest, **fields))

        before = self.balance_cents()
        first = refund(InstanceId=PACKS["Refundable"], ClientToken="refund-sdk-1")
        again = refund(InstanceId=PACKS["Refundable"], ClientToken="refund-sdk-1")
        self.assertEqual(again.OrderIdList, first.OrderIdList)
        self.assertEqual(self.balance_cents(), before + 2000, "credited once")
        self.assertError("FailedOperation.NotAllowToRefund", refund, InstanceId=PACKS["Old"],
                         message_part="5 days")
        self.assertError("FailedOperation.NotAllowToRefund", refund, InstanceId=PACKS["Refundable"])


class T04Protocol(ApiTestCase):
    def balance(self, client):
        pace(client.credential.secretId, "DescribeAccountBalance")
        return client.DescribeAccountBalance(models.DescribeAccountBalanceRequest())

    def test_authentication_errors(self):
        self.assertError("AuthFailure.SignatureFailure", self.balance, billing(secret_key="not-the-key"))
        missing = billing_client.BillingClient(credential.Credential("AKIDnosuchkey0000", "x"), "", profile())
        self.assertError("AuthFailure.SecretIdNotFound", self.balance, missing)
        self.assertError("AuthFailure.SecretIdNotFound", self.balance, billing("revoked"), message_part="revoked")
        # A client clock more than 5 minutes off: the signature has expired.
        real_time = time.time
        with mock.patch("tencentcloud.common.abstract_client.time.time", lambda: real_time() - 400):
            self.assertError("AuthFailure.SignatureExpire", self.balance, billing())
        with mock.patch("tencentcloud.common.abstract_client.time.time", lambda: real_time() + 400):
            self.assertError("AuthFailure.SignatureExpire", self.balance, billing())
        with mock.patch("tencentcloud.common.abstract_client.time.time", lambda: real_time() - 240):
            self.balance(billing())

    def test_common_errors(self):
        self.assertError("InvalidAction", call_common, common(), "DescribeLunch", {})
        self.assertError("NoSuchVersion", call_common, common(version="2017-03-12"), "DescribeAccountBalance", {})
        self.assertError("UnknownParameter", call_common, common(), "DescribeAccountBalance", {"Colour": "red"})
        self.assertError("InvalidParameter", call_common, common(), "DescribeBillResourceSummary",
                         {"Offset": "zero", "Limit": 1, "Month": MONTH})
        self.assertError("AuthFailure.UnauthorizedOperation", call_common, common(), "CreateAccount", {"Name": "x"})

    def test_rate_limit_five_per_second_per_action_and_key(self):
        client = billing("member_rate")
        outcomes = []
        for _ in range(12):
            try:
                client.DescribeAccountBalance(models.DescribeAccountBalanceRequest())
                outcomes.append("ok")
            except TencentCloudSDKException as error:
                outcomes.append(error.code)
        self.assertEqual(outcomes[:5], ["ok"] * 5)
        self.assertIn("RequestLimitExceeded", outcomes)
        self.assertTrue(set(outcomes) <= {"ok", "RequestLimitExceeded"}, outcomes)
        # Another action of the same key has its own budget; after a second the limit has passed.
        call(client, "DescribeRenewInstances", models.DescribeRenewInstancesRequest())
        time.sleep(1.1)
        client.DescribeAccountBalance(models.DescribeAccountBalanceRequest())

    def test_replayed_requests(self):
        """A captured request replayed as is: answered again while fresh (idempotent for money
        through its ClientToken), refused once older than 5 minutes, and any change to it
        breaks the signature."""
        body = json.dumps({"InstanceId": PACKS["Renewable"], "Period": 1, "ClientToken": "replay-1"})
        timestamp = int(time.time())

        def send(body, timestamp, sign_body=None):
            headers = signed_headers("RenewInstance", sign_body or body, timestamp, KEYS["member"])
            req = urllib.request.Request("http://%s/" % ENDPOINT, data=body.encode(), headers=headers, method="POST")
            with urllib.request.urlopen(req) as response:
                return json.loads(response.read())["Response"]

        first = send(body, timestamp)
        self.assertIn("OrderIdList", first, first)
        before = self.balance_cents()
        time.sleep(0.3)
        replay = send(body, timestamp)
        self.assertEqual(replay["OrderIdList"], first["OrderIdList"])
        self.assertNotEqual(replay["RequestId"], first["RequestId"])
        self.assertEqual(self.balance_cents(), before, "a replay charges nothing")
        tampered = body.replace('"Period": 1', '"Period": 9')
        self.assertEqual(send(tampered, timestamp, sign_body=body)["Error"]["Code"], "AuthFailure.SignatureFailure")
        stale = send(body, timestamp - 301)
        self.assertEqual(stale["Error"]["Code"], "AuthFailure.SignatureExpire")


def signed_headers(action, body, timestamp, key):
    """TC3-HMAC-SHA256 by hand, as the public documentation describes it."""
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    canonical = "POST\n/\n\ncontent-type:application/json\nhost:%s\n\ncontent-type;host\n%s" % (
        ENDPOINT, hashlib.sha256(body.encode()).hexdigest())
    to_sign = "TC3-HMAC-SHA256\n%d\n%s/billing/tc3_request\n%s" % (
        timestamp, date, hashlib.sha256(canonical.encode()).hexdigest())

    def mac(k, msg):
        return hmac.new(k, msg.encode(), hashlib.sha256).digest()

    signing = mac(mac(mac(("TC3" + key["SecretKey"]).encode(), date), "billing"), "tc3_request")
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Authorization": "TC3-HMAC-SHA256 Credential=%s/%s/billing/tc3_request, SignedHeaders=content-type;host, "
                         "Signature=%s" % (key["SecretId"], date, signature),
        "Content-Type": "application/json",
        "Host": ENDPOINT,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": "2018-07-09",
    }


class T05Provisioning(ApiTestCase):
    def test_a_storefront_sells_and_provisions_packs(self):
        op = common("operator")
        account = call_common(op, "CreateAccount", {"Name": "Initech", "TimeZone": "Asia/Shanghai"})
        uin = account["Uin"]
        self.assertEqual(account["TimeZone"], "Asia/Shanghai")
        top_up = {"Uin": uin, "Amount": 10000, "ClientToken": "topup-initech-1"}
        first = call_common(op, "TopUpAccountBalance", top_up)
        again = call_common(op, "TopUpAccountBalance", top_up)
        self.assertEqual(again["OrderId"], first["OrderId"])
        self.assertEqual(again["Balance"], 10000, "credited once")
        self.assertError("InvalidParameterValue", call_common, op, "TopUpAccountBalance",
                         dict(top_up, Amount=5))
        pack = {
            "Uin": uin, "Name": "Initech monthly", "ProductCode": "p_mps",
            "SubProductCode": "sp_mps_general_transcoding", "RegionCode": "ap-shanghai",
            "PaymentMode": "period_decrement", "CycleUnit": "m", "PeriodUnit": "m", "Period": 3,
            "CapacityItems": [{"Name": "General transcoding", "Unit": "minutes", "Capacity": "500"}],
            "DeductionAttributes": [{"Key": "region", "Values": ["ap-shanghai"]}],
            "EffectiveTime": "2999-01-01 00:00:00", "TimeZone": "Asia/Shanghai", "UnitPrice": "12.5",
            "RenewFlag": "NOTIFY_AND_AUTO_RENEW", "RenewPeriod": 1,
            "Tags": [{"TagKey": "shop", "TagValue": "web"}], "ClientToken": "sell-initech-1",
        }
        sold = call_common(op, "CreateResourcePackage", pack)
        resold = call_common(op, "CreateResourcePackage", pack)
        self.assertEqual(resold["InstanceId"], sold["InstanceId"])
        self.assertEqual(sold["Price"], "37.50000000")
        self.assertEqual(sold["Balance"], 10000 - 3750)
        self.assertError("FailedOperation.BalanceInsufficient", call_common, op, "CreateResourcePackage",
                         dict(pack, ClientToken="sell-initech-2", Period=100))
        gift = dict(pack, ClientToken="gift-1", PayFrom="settled", PaymentMode="total_decrement", CycleUnit=None,
                    PeriodUnit="y", Period=1, EffectiveTime="2020-01-01 00:00:00")
        gift = {k: v for k, v in gift.items() if v is not None}
        self.assertError("InvalidParameterValue", call_common, op, "CreateResourcePackage", gift,
                         message_part="in the past")
        self.assertError("InvalidParameterValue", call_common, op, "CreateResourcePackage",
                         dict(pack, ClientToken="bad-1", PaymentMode="forever"))
        self.assertError("MissingParameter", call_common, op, "CreateResourcePackage",
                         {k: v for k, v in pack.items() if k != "CapacityItems"})
        frozen = call_common(op, "FreezeResourcePackage", {"InstanceId": sold["InstanceId"]})
        self.assertEqual(frozen["Status"], "frozen")
        self.assertError("FailedOperation", call_common, op, "FreezeResourcePackage", {"InstanceId": sold["InstanceId"]})
        thawed = call_common(op, "UnfreezeResourcePackage", {"InstanceId": sold["InstanceId"]})
        self.assertEqual(thawed["Status"], "inactive")
        # Provisioning is for operator keys only.
        for key in ("member", "org"):
            self.assertError("AuthFailure.UnauthorizedOperation", call_common, common(key), "TopUpAccountBalance",
                             {"Uin": uin, "Amount": 100})


class T06RespackActions(ApiTestCase):
    def test_resource_packages_usage_and_deductions(self):
        client = common()
        listed = call_common(client, "DescribeResourcePackages", {"Limit": 100})
        self.assertEqual(listed["Total"], 5)
        by_id = {p["ResourcePackageId"]: p for p in listed["ResourcePackageSet"]}
        period = by_id[PACKS["Renewable"]]
        for field in ("ResourcePackageName", "ProductName", "SubProductName", "RegionCode", "ZoneCode", "Status",
                      "PaymentModeName", "CapacityUnit", "SinglePeriodRemaining", "SinglePeriodCapacity",
                      "SinglePeriodStartTime", "SinglePeriodEndTime", "RemainingPeriods", "TotalPeriods",
                      "TotalRemaining", "TotalCapacity", "CapacityItems", "DeductionAttributes", "EffectiveTime",
                      "ExpireTime", "PackageExpiryTime", "RenewFlag", "AutoRenewPeriod", "Renewable"):
            self.assertIn(field, period)
        self.assertEqual(period["PaymentModeName"], "Period decrement")
        self.assertEqual((period["SinglePeriodCapacity"], period["TotalPeriods"]), ("100", 6), "3 bought, 2 + 1 renewed")
        total = by_id[PACKS["Total"]]
        self.assertIsNone(total["SinglePeriodCapacity"], "only shown for period and sharding decrement")
        self.assertFalse(total["Renewable"])
        refunded = call_common(client, "DescribeResourcePackages", {"StatusList": ["refunded"]})
        self.assertEqual([p["ResourcePackageId"] for p in refunded["ResourcePackageSet"]], [PACKS["Refundable"]])
        page = call_common(client, "DescribeResourcePackages", {"Offset": 1, "Limit": 2, "OrderBy": "NameAsc"})
        names = sorted(p["ResourcePackageName"] for p in listed["ResourcePackageSet"])
        self.assertEqual([p["ResourcePackageName"] for p in page["ResourcePackageSet"]], names[1:3])
        self.assertEqual(call_common(client, "DescribeResourcePackages", {"SearchKey": "Tagged"})["Total"], 1)
        for code in {p["SubProductCode"] for p in listed["ResourcePackageSet"]} | {"sp_mps_tsc_transcoding"}:
            typed = call_common(client, "DescribeResourcePackages", {"SubProductCode": code, "Limit": 100})
            expected = sorted(p["ResourcePackageId"] for p in listed["ResourcePackageSet"]
                              if p["SubProductCode"] == code)
            self.assertEqual(sorted(p["ResourcePackageId"] for p in typed["ResourcePackageSet"]), expected, code)
        self.assertError("InvalidParameterValue", call_common, client, "DescribeResourcePackages",
                         {"StatusList": ["sleeping"]})
        org_view = call_common(common("org"), "DescribeResourcePackages", {"PayerUin": FIXTURE["MemberUin"]})
        self.assertEqual(org_view["Total"], 5)

        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = {"IdempotencyKey": "sdk-usage-1", "ProductCode": "p_mps",
                  "SubProductCode": "sp_mps_general_transcoding", "UsageType": "general", "Quantity": "7.5",
                  "OccurredAt": now, "Attributes": [{"Key": "region", "Value": "ap-guangzhou"}]}
        first = call_common(client, "CreateUsageRecords", {"Records": [record]})["RecordSet"][0]
        self.assertEqual((first["Deducted"], first["Overage"], first["Replayed"]), ("7.5", "0", False))
        again = call_common(client, "CreateUsageRecords", {"Records": [record]})["RecordSet"][0]
        self.assertEqual((again["UsageRecordId"], again["Replayed"]), (first["UsageRecordId"], True))
        self.assertError("AuthFailure.UnauthorizedOperation", call_common, client, "CreateUsageRecords",
                         {"Records": [dict(record, IdempotencyKey="sdk-usage-2", Uin=FIXTURE["StrangerUin"])]})
        operator_batch = call_common(common("operator"), "CreateUsageRecords",
                                     {"Records": [dict(record, IdempotencyKey="sdk-usage-3", Uin=FIXTURE["StrangerUin"])]})
        self.assertEqual(len(operator_batch["RecordSet"]), 1)
        self.assertFalse(operator_batch["RecordSet"][0]["Replayed"])
        self.assertError("InvalidParameterValue", call_common, client, "CreateUsageRecords",
                         {"Records": [dict(record, IdempotencyKey="sdk-usage-4", Quantity="-1")]})
        self.assertError("MissingParameter", call_common, client, "CreateUsageRecords", {})

        deductions = call_common(client, "DescribeResourcePackageDeductions", {"Limit": 10})
        self.assertEqual(deductions["Total"], 1)
        deduction = deductions["DeductionSet"][0]
        self.assertEqual((deduction["Amount"], deduction["UsageType"]), ("7.5", "general"))
        self.assertEqual(float(deduction["Before"]) - float(deduction["After"]), 7.5)
        daily = call_common(client, "DescribeResourcePackageDeductions",
                            {"Daily": True, "ResourcePackageId": deduction["ResourcePackageId"]})
        self.assertEqual(daily["DailyUsageSet"][0]["Amount"], "7.5")
        self.assertEqual(daily["DailyUsageSet"][0]["Records"], 1)
        self.assertError("InvalidParameterValue", call_common, client, "DescribeResourcePackageDeductions",
                         {"StartTime": "2026-02-01", "EndTime": "2026-01-01"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
